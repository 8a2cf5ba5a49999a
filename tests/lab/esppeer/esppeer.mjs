// SPDX-License-Identifier: MIT
// esppeer - the lab's ESP32: a board running Espressif's serverless_mqtt example
// (libjuice variant), step by step as its published source does it, with werift-ice in
// place of libjuice and mqtt.js in place of esp-mqtt. It shares no code with brokerless.
//
//   node esppeer.mjs --role peer1|peer2 --broker mqtt://H:P [--topic BASE]
//                    [--stun H:P] [--local mqtt://127.0.0.1:1883] [--inject-dir DIR]
//
// Boot: gather every candidate (controlling agent: libjuice takes that role when it
// describes itself first), connect to the signalling broker (10 s), subscribe to the
// other peer's topic, handshake (peer1 says "0" each second, 60 times at most; peer2
// answers "1"; peer1 answers "2"), publish the description as cJSON_Print writes it,
// wait 10 s for the other's, drop the signalling client, wait 90 s for ICE. Then bridge
// the local broker (the board's mosquitto) and the ICE link, one message per datagram:
// u16le topic length with its NUL, u16le payload length, topic, NUL, pad to 4, payload;
// what arrives is published locally at QoS 0 by the client "local_mqtt", which the
// bridge does not forward (here: MQTT 5 No Local). Any failure, or ICE failing later,
// "reboots": everything starts again with new ICE credentials.
//
// Lab controls: SIGUSR1 reboots now; SIGUSR2 sends each file of --inject-dir (sorted)
// as one raw datagram over the link. Lines on stdout say what happened ("esppeer: ...").
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import { Candidate, Connection } from "werift-ice";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
const ROLE = args.role === "peer2" ? "2" : "1";
const THEIRS = ROLE === "1" ? "2" : "1";
const BASE = args.topic ?? "/topic/serverless_mqtt";
const PUB_TOPIC = BASE + ROLE;
const SUB_TOPIC = BASE + THEIRS;
const BROKER = args.broker;
const LOCAL = args.local ?? "mqtt://127.0.0.1:1883";
const STUN = args.stun ? args.stun.split(":") : null;
const REBOOT_DELAY_MS = Number(args["reboot-delay-ms"] ?? 1000);

const say = (s) => process.stdout.write(`esppeer: ${s}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let boot = 0;
let agent = null; // the ICE agent of this boot
let sync = null; // the signalling client of this boot
let local = null; // the bridge's client of the local broker
let rebooting = null;

// ---- the example's framing ----

function wrap(topic, payload) {
  const t = Buffer.from(topic + "\0", "utf8");
  const aligned = (t.length + 3) & ~3;
  const out = Buffer.alloc(4 + aligned + payload.length);
  out.writeUInt16LE(t.length, 0);
  out.writeUInt16LE(payload.length, 2);
  t.copy(out, 4);
  payload.copy(out, 4 + aligned);
  return out;
}

function unwrap(buf) {
  if (buf.length < 4) return null;
  const tlen = buf.readUInt16LE(0);
  const dlen = buf.readUInt16LE(2);
  const aligned = (tlen + 3) & ~3;
  if (tlen < 2 || 4 + aligned + dlen > buf.length || buf[4 + tlen - 1] !== 0) return null;
  return {
    topic: buf.subarray(4, 4 + tlen - 1).toString("utf8"),
    payload: buf.subarray(4 + aligned, 4 + aligned + dlen),
  };
}

// ---- the description, as the board writes and reads it ----

// cJSON_Print: an object, one key per line, a tab before each key and after each colon.
function cjsonPrint(obj) {
  const lines = Object.entries(obj).map(([k, v]) => `\t${JSON.stringify(k)}:\t${JSON.stringify(v)}`);
  return `{\n${lines.join(",\n")}\n}`;
}

// libjuice reads a line only once its LF came; CR is dropped.
function parseDesc(desc) {
  const out = {};
  const lines = desc.split("\n");
  lines.pop(); // the part after the last LF
  for (const raw of lines) {
    const line = raw.replace(/\r/g, "");
    if (line.startsWith("a=ice-ufrag:")) out.ufrag = line.slice(12).split(/\s/)[0];
    if (line.startsWith("a=ice-pwd:")) out.pwd = line.slice(10).split(/\s/)[0];
  }
  return out;
}

// ---- one boot ----

async function createCandidates() {
  const options = { useIpv4: true, useIpv6: false };
  if (STUN) options.stunServer = [STUN[0], Number(STUN[1] ?? 3478)];
  agent = new Connection(true, options);
  const desc = {
    desc: `a=ice-ufrag:${agent.localUsername}\r\na=ice-pwd:${agent.localPassword}\r\na=ice-options:ice2,trickle\r\n`,
  };
  await agent.gatherCandidates();
  agent.localCandidates.slice(0, 10).forEach((c, i) => {
    desc[`cand${i}`] = `a=candidate:${c.toSdp()}`;
  });
  say(`boot ${boot}: gathered ${agent.localCandidates.length} candidates`);
  return cjsonPrint(desc);
}

function syncPeers(ourDesc) {
  return new Promise((resolve, reject) => {
    let state = { sync1: false, sync2: false, desc: false };
    let retry = 0;
    let ticker = null;
    let descTimer = null;
    const done = (err) => {
      clearInterval(ticker);
      clearTimeout(descTimer);
      clearTimeout(connectTimer);
      // After the exchange the board destroys its signalling client.
      sync?.end(true);
      sync = null;
      if (err) reject(err);
      else resolve();
    };
    const connectTimer = setTimeout(() => done(new Error("failed to connect to the sync broker")), 10000);
    sync = mqtt.connect(BROKER, { protocolVersion: 4, clean: true, reconnectPeriod: 0 });
    sync.on("error", (e) => done(new Error(`mqtt error: ${e.message}`)));
    sync.on("close", () => {
      if (sync) done(new Error("mqtt disconnected"));
    });
    sync.on("connect", () => {
      clearTimeout(connectTimer);
      sync.subscribe(SUB_TOPIC, { qos: 1 });
      say(`boot ${boot}: connected to the broker, waiting for the other peer`);
      ticker = setInterval(() => {
        if (state.sync2) return;
        if (retry++ >= 60) return done(new Error(`failed to sync after ${retry} seconds`));
        if (ROLE === "1") sync.publish(PUB_TOPIC, "0", { qos: 1, retain: false });
      }, 1000);
    });
    sync.on("message", (topic, data) => {
      if (topic !== SUB_TOPIC) return;
      if (data.length > 1) {
        let root;
        try {
          root = JSON.parse(data.toString("utf8"));
        } catch {
          return;
        }
        if (!root || typeof root.desc !== "string") return;
        const { ufrag, pwd } = parseDesc(root.desc);
        agent.setRemoteParams({ iceLite: false, usernameFragment: ufrag, password: pwd });
        let n = 0;
        for (; typeof root[`cand${n}`] === "string"; n++) {
          const line = root[`cand${n}`].replace(/^a=/, "").replace(/^candidate:/, "");
          agent.addRemoteCandidate(Candidate.fromSdp(line)).catch(() => {});
        }
        say(`boot ${boot}: remote description applied (${n} candidates)`);
        state.desc = true;
        if (state.published) done();
        return;
      }
      const c = data.toString("latin1");
      if (ROLE === "1" && c === "1" && !state.published) {
        sync.publish(PUB_TOPIC, "2", { qos: 1, retain: false });
        if (!state.sync2) publishDesc();
      } else if (ROLE === "2" && c === "0" && !state.sync2) {
        sync.publish(PUB_TOPIC, "1", { qos: 1, retain: false });
        state.sync1 = true;
        retry = 0;
      } else if (ROLE === "2" && c === "2" && !state.sync2) {
        publishDesc();
      }
    });
    function publishDesc() {
      state.sync2 = true;
      say(`boot ${boot}: sync done`);
      sync.publish(PUB_TOPIC, ourDesc, { qos: 1, retain: false });
      state.published = true;
      if (state.desc) return done();
      descTimer = setTimeout(() => done(new Error("timeout waiting for the other peer's candidates")), 10000);
    }
  });
}

async function connectIce() {
  const timer = sleep(90000).then(() => {
    throw new Error("ICE not connected within 90 s");
  });
  await agent.addRemoteCandidate(undefined).catch(() => {});
  await Promise.race([agent.connect(), timer]);
}

async function bootOnce() {
  boot++;
  const ourDesc = await createCandidates();
  await syncPeers(ourDesc);
  await connectIce();
  say(`boot ${boot}: ice connected`);
  const me = agent;
  me.stateChanged.subscribe((st) => {
    if (me === agent && (st === "failed" || st === "disconnected" || st === "closed"))
      reboot(`ice ${st}`);
  });
  me.onData.subscribe((buf) => {
    if (me !== agent) return;
    const m = unwrap(buf);
    if (!m) {
      say("received an invalid message");
      return;
    }
    say(`received ${m.topic} (${m.payload.length} bytes)`);
    local?.publish(m.topic, m.payload, { qos: 0, retain: false });
  });
}

function startLocal() {
  local = mqtt.connect(LOCAL, { clientId: "local_mqtt", protocolVersion: 5, clean: true });
  local.on("connect", () => {
    // The example's broker forwards what any client but "local_mqtt" publishes.
    local.subscribe("#", { qos: 0, nl: true });
    say("local client connected");
  });
  local.on("message", (topic, payload) => {
    if (!agent || agent.state !== "connected") return;
    const frame = wrap(topic, payload);
    if (frame.length > 4096) {
      say(`Fail to forward, message too long: ${topic}`);
      return;
    }
    agent.send(frame).catch(() => {});
    say(`forwarded ${topic} (${payload.length} bytes)`);
  });
}

async function run() {
  for (;;) {
    try {
      await bootOnce();
      return;
    } catch (e) {
      say(`boot ${boot} failed: ${e.message}; restarting`);
      await teardown();
      await sleep(REBOOT_DELAY_MS);
    }
  }
}

async function teardown() {
  const a = agent;
  agent = null;
  sync?.end(true);
  sync = null;
  await a?.close().catch(() => {});
}

async function reboot(why) {
  if (rebooting) return;
  say(`restarting (${why})`);
  rebooting = (async () => {
    await teardown();
    await sleep(REBOOT_DELAY_MS);
    rebooting = null;
    run();
  })();
}

function inject() {
  const dir = args["inject-dir"];
  if (!dir || !agent) return;
  const files = readdirSync(dir).sort();
  for (const f of files) agent.send(readFileSync(join(dir, f))).catch(() => {});
  say(`injected ${files.length} datagrams`);
}

process.on("SIGUSR1", () => reboot("asked to"));
process.on("SIGUSR2", inject);
process.on("SIGTERM", () => process.exit(0));
startLocal();
run();
