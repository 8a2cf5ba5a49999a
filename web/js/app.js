// SPDX-License-Identifier: MIT
// app.js - the page: this browser's identity, pairing (kept in this origin's storage),
// the link to the site, the topic tree and publishing. window.blPage lets the lab's
// driver (tests/lab/t18_browser.sh) read what the page shows and set its test hooks.
import { loadIdentity } from "./identity.js";
import { Link } from "./link.js";
import { filterValid, Topics } from "./topics.js";

const $ = (id) => document.getElementById(id);
const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
const STORE = "brokerless.pairing";
const topics = new Topics();
const test = {}; // lab hooks (link.js): wrongKey, badDtlsFingerprint
let link = null, identity = null, renderQueued = false;

function log(text) {
  console.log(text);
  const li = document.createElement("li");
  li.textContent = `${new Date().toISOString().slice(11, 23)} ${text}`;
  $("log").prepend(li);
  while ($("log").children.length > 200) $("log").lastChild.remove();
}

// "brokerless-peer name=N fingerprint=F [signal=URL]" (brokerless init, peerline.c).
function parsePeerLine(line) {
  const words = line.trim().split(/\s+/);
  if (words.shift() !== "brokerless-peer") return null;
  const kv = Object.fromEntries(words.map((w) => [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)]));
  if (!NAME_RE.test(kv.name ?? "") || !/^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/.test(kv.fingerprint ?? "")) return null;
  return { name: kv.name, fingerprint: kv.fingerprint.toUpperCase(), signal: kv.signal };
}

function showPeerSection() {
  const name = $("my-name").value || "NAME";
  const line = `brokerless-peer name=${name} fingerprint=${identity?.fingerprint ?? "…"} profile=browser`;
  $("pair-line").textContent = line;
  $("peer-add").textContent = `brokerless peer add -c /etc/brokerless/brokerless.conf '${line}' \\\n  --rule 'sensors/# out 1' --rule 'commands/# in 1'`;
  $("peer-section").textContent =
    `[peer ${name}]\nprofile = browser\nfingerprint = ${identity?.fingerprint ?? "…"}\n` +
    `topic = sensors/# out 1     # what this browser may see\ntopic = commands/# in 1     # and publish`;
}

function render() {
  renderQueued = false;
  const tree = $("tree");
  const root = topics.tree();
  if (!root.children.size) { tree.innerHTML = '<p class="empty">No messages yet.</p>'; return; }
  const ul = (node) => {
    const list = document.createElement("ul");
    for (const child of node.children.values()) {
      const li = document.createElement("li");
      const seg = document.createElement("span");
      seg.className = "seg";
      seg.textContent = child.name || "(empty)";
      li.append(seg);
      if (child.entry) {
        li.dataset.topic = child.topic;
        const val = document.createElement("span");
        val.className = "val";
        let text;
        try { text = new TextDecoder("utf-8", { fatal: true }).decode(child.entry.payload); }
        catch { text = `${child.entry.payload.length} bytes`; }
        val.textContent = text.length > 120 ? text.slice(0, 120) + "…" : text;
        const meta = document.createElement("span");
        meta.className = "meta";
        meta.textContent = `×${child.entry.count}${child.entry.retain ? " retained" : ""} ${child.entry.at.toLocaleTimeString()}`;
        li.append(val, meta);
      }
      if (child.children.size) li.append(ul(child));
      list.append(li);
    }
    return list;
  };
  tree.replaceChildren(ul(root));
}

function queueRender() {
  if (!renderQueued) { renderQueued = true; requestAnimationFrame(render); }
}

function counts() {
  if (!link) return;
  $("count-in").textContent = link.stats.msgIn;
  $("count-out").textContent = link.stats.msgOut;
  $("count-acked").textContent = link.stats.acked;
}

function savedPairing() {
  try { return JSON.parse(localStorage.getItem(STORE) ?? "null"); } catch { return null; }
}

async function connect(p) {
  if (link) return;
  link = new Link({ me: p.me, site: p.site, sitePin: p.sitePin, secret: p.secret, broker: p.broker, stun: p.stun, turn: p.turn, turnUser: p.turnUser, turnPass: p.turnPass }, identity, test);
  link.addEventListener("log", (e) => log(e.detail));
  link.addEventListener("state", (e) => {
    $("state").textContent = e.detail.state;
    $("state").className = "state " + e.detail.state;
    $("why").textContent = e.detail.why ?? "";
    if (e.detail.state === "open") document.body.classList.add("paired");
    log(`link: ${e.detail.state}${e.detail.why ? " — " + e.detail.why : ""}`);
  });
  link.addEventListener("hello", (e) => log(`link: HELLO from ${e.detail.site}`));
  link.addEventListener("message", (e) => { topics.add(e.detail.topic, e.detail.payload, e.detail.retain); counts(); queueRender(); });
  link.addEventListener("acked", counts);
  await link.start();
}

$("connect").addEventListener("click", async () => {
  $("pair-error").textContent = "";
  const me = $("my-name").value.trim(), site = parsePeerLine($("site-line").value);
  const secret = $("secret").value, broker = $("broker").value.trim(), stun = $("stun").value.trim();
  const turn = $("turn").value.trim(), turnUser = $("turn-user").value, turnPass = $("turn-pass").value;
  const error = !NAME_RE.test(me) ? "the peer name: 1 to 64 of A-Z a-z 0-9 . _ -"
    : !site ? "the pairing line: brokerless-peer name=… fingerprint=AB:CD:…"
    : site.name === me ? "this browser's name must differ from the site's"
    : secret.length < 16 ? "the network secret: at least 16 characters"
    : !/^wss?:\/\/[^/\s]+/.test(broker) ? "the broker: ws://HOST:PORT or wss://HOST:PORT"
    : stun && !/^[^\s:]+:\d+$/.test(stun) ? "the STUN server: HOST:PORT"
    : turn && !/^[^\s:]+:\d+$/.test(turn) ? "the TURN server: HOST:PORT" : null;
  if (error) { $("pair-error").textContent = "Check " + error; return; }
  const p = { me, site: site.name, sitePin: site.fingerprint, siteLine: $("site-line").value.trim(), secret, broker, stun, turn, turnUser, turnPass };
  localStorage.setItem(STORE, JSON.stringify(p));
  await connect(p);
});

$("forget").addEventListener("click", () => { localStorage.removeItem(STORE); location.reload(); });
$("my-name").addEventListener("input", showPeerSection);

$("sub-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = $("filter").value.trim();
  if (!filterValid(f)) { log(`subscribe: "${f}" is not an MQTT topic filter`); return; }
  topics.setFilter(f);
  log(`subscribe: showing ${f}`);
  render();
});

$("pub-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const topic = $("pub-topic").value;
  $("pub-error").textContent = "";
  if (!topic || /[+#\0]/.test(topic)) { $("pub-error").textContent = "A topic name, without + or #"; return; }
  if (!link?.publish(topic, $("pub-payload").value, Number($("pub-qos").value), $("pub-retain").checked))
    $("pub-error").textContent = "Not linked to the site yet";
  counts();
});

window.blPage = {
  test,
  state: () => link?.state ?? "idle",
  stats: () => ({ ...(link?.stats ?? {}) }),
  badFps: () => link?.badFps ?? [],
  fingerprint: () => identity?.fingerprint,
  topics: () => Object.fromEntries([...topics.map].map(([t, e]) => [t, { value: new TextDecoder().decode(e.payload), count: e.count }])),
  // Lab: drop the link and ask the site for a new session (as a failure would).
  reconnect: (why) => link?.fail(why ?? "asked to reconnect"),
};

(async () => {
  try {
    identity = await loadIdentity();
  } catch (e) {
    $("my-fp").textContent = `no key: ${e.message} (the page needs a secure context: brokerless web on localhost)`;
    return;
  }
  $("my-fp").textContent = identity.fingerprint;
  const p = savedPairing();
  $("my-name").value = p?.me ?? "browser-" + identity.fingerprint.slice(0, 5).replace(":", "").toLowerCase();
  showPeerSection();
  if (p) {
    $("site-line").value = p.siteLine ?? "";
    $("secret").value = p.secret;
    $("broker").value = p.broker;
    $("stun").value = p.stun ?? "";
    $("turn").value = p.turn ?? "";
    $("turn-user").value = p.turnUser ?? "";
    $("turn-pass").value = p.turnPass ?? "";
    await connect(p);
  }
  log("ready");
})();
