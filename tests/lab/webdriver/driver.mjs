// SPDX-License-Identifier: MIT
// driver.mjs - the lab's user of the browser peer page (tests/lab/t18_browser.sh): drives
// Debian's headless chromium with puppeteer-core through the page, step by step. The
// test shell and the driver meet through files in --ctl: the driver prints
// "driver: STEP ..." lines on stdout when it has done a step, and waits for the file
// go-STEP before a step that needs the shell first.
//
//   node driver.mjs --url http://127.0.0.1:P/ --ctl DIR --shot FILE.png --name NAME
//                   --site-line LINE --secret S --broker ws://H:P [--stun H:P] [--n N]
import { existsSync } from "node:fs";
import puppeteer from "puppeteer-core";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
const N = Number(args.n ?? 20);
const say = (s) => process.stdout.write(`driver: ${s}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFile(step, timeoutMs = 300000) {
  const f = `${args.ctl}/go-${step}`;
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(100)) if (existsSync(f)) return;
  throw new Error(`no go-${step} from the test within ${timeoutMs / 1000} s`);
}

// Poll fn in the page until it returns a truthy value.
async function until(page, what, fn, arg, timeoutMs = 120000) {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(100)) {
    const v = await page.evaluate(fn, arg);
    if (v) return v;
  }
  throw new Error(`timed out waiting for ${what}`);
}

const stats = (page) => page.evaluate(() => window.blPage.stats());

async function publishViaForm(page, prefix, n) {
  for (let i = 1; i <= n; i++) {
    await page.$eval("#pub-topic", (el, v) => (el.value = v), `${prefix}/${i}`);
    await page.$eval("#pub-payload", (el, v) => (el.value = v), `browser ${i}`);
    await page.click("#pub-send");
  }
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    userDataDir: args.profile,
    // As root, chromium needs --no-sandbox. Host candidates keep chromium's default mDNS
    // names (.local), which the daemon cannot resolve and ignores, as with any browser:
    // the link goes through the srflx candidates that STUN gives the page.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on("console", (m) => say(`console ${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => say(`page error: ${e.message}`));
  // Anything the page asks of another origin would break "works offline": count it.
  let foreign = 0;
  page.on("request", (r) => { if (!r.url().startsWith(new URL(args.url).origin) && !r.url().startsWith("ws")) foreign++; });
  await page.goto(args.url, { waitUntil: "load" });
  const fp = await until(page, "the browser's key", () => window.blPage?.fingerprint());
  say(`fingerprint ${fp}`);
  // The user names this browser; the page shows its pairing line for the site.
  await page.$eval("#my-name", (el, v) => { el.value = v; el.dispatchEvent(new Event("input")); }, args.name);
  say(`pairline ${await page.$eval("#pair-line", (el) => el.textContent)}`);

  // 1. Pairing: the shell pins fp at the site, then the user fills the form.
  await waitFile("pair");

  await page.type("#site-line", args["site-line"]);
  await page.type("#secret", args.secret);
  await page.type("#broker", args.broker);
  if (args.stun) await page.type("#stun", args.stun);
  if (args.turn) {
    await page.type("#turn", args.turn);
    await page.type("#turn-user", args["turn-user"]);
    await page.type("#turn-pass", args["turn-pass"]);
  }
  await page.click("#connect");
  await until(page, "the link to open", () => window.blPage.state() === "open");
  say(`open ${JSON.stringify(await stats(page))}`);

  // 2. Browser -> site: N messages at QoS 1 through the form, each acknowledged.
  await publishViaForm(page, "web/from-browser", N);
  await until(page, "ACKs", (n) => window.blPage.stats().acked >= n, N);
  say(`published ${JSON.stringify(await stats(page))}`);

  // 3. Site -> browser: the shell publishes N at the site; the page shows them.
  await waitFile("site-published");
  await until(page, "the site's messages", (n) => window.blPage.stats().msgIn >= n, N);
  await until(page, "the tree", (n) => document.querySelectorAll("#tree li[data-topic]").length >= n, N);
  await page.$eval("#filter", (el) => (el.value = "sensors/#"));
  await page.click("#sub-apply");
  await page.screenshot({ path: args.shot, fullPage: true });
  say(`received ${JSON.stringify(await stats(page))} topics ${Object.keys(await page.evaluate(() => window.blPage.topics())).length}`);

  // 4. A wrong signing key: two restarts signed by a key that is not the pinned one.
  await page.evaluate(() => { window.blPage.test.wrongKey = true; window.blPage.reconnect("lab: wrong key"); });
  await until(page, "a wrongly signed restart", () => window.blPage.stats().sentWrongKey >= 1);
  await until(page, "the next retry to be due", () => window.blPage.state() === "signalling");
  await page.evaluate(() => window.blPage.reconnect("lab: wrong key again"));
  await until(page, "a second wrongly signed restart", () => window.blPage.stats().sentWrongKey >= 2);
  await page.evaluate(() => { window.blPage.test.wrongKey = false; });
  const wrong = (await stats(page)).sentWrongKey;
  say(`wrongkey sent ${wrong}`);
  await waitFile("wrongkey-checked");
  // Ask again at once, now with the right key (a retry already due asks by itself).
  await page.evaluate(() => window.blPage.reconnect("lab: right key"));
  const opens = (await stats(page)).opens;
  await until(page, "the link to open again", (o) => window.blPage.state() === "open" && window.blPage.stats().opens > o, opens);
  say(`open again ${JSON.stringify(await stats(page))}`);

  // 5. A DTLS certificate that is not the one the signed answer names.
  const before = await stats(page);
  await page.evaluate(() => { window.blPage.test.badDtlsFingerprint = true; window.blPage.reconnect("lab: bad dtls"); });
  await until(page, "an answer with another fingerprint", (s) => window.blPage.stats().badFpAnswers > s, before.badFpAnswers ?? 0);
  await until(page, "that session to fail", () => window.blPage.state() === "retrying", undefined, 90000);
  await page.evaluate(() => { window.blPage.test.badDtlsFingerprint = false; });
  const bad = (await stats(page)).badFpAnswers;
  const fps = await page.evaluate(() => window.blPage.badFps());
  say(`baddtls answers ${bad} fps ${fps.join(",")}`);
  await until(page, "the link to open again", (o) => window.blPage.state() === "open" && window.blPage.stats().opens > o, before.opens, 90000);
  say(`open again ${JSON.stringify(await stats(page))}`);

  // 6. The site restarts: the page reconnects by itself.
  say("ready-restart");
  await waitFile("restarted");
  const o6 = (await stats(page)).opens;
  await until(page, "the link after the site's restart", (o) => window.blPage.state() === "open" && window.blPage.stats().opens > o, o6, 120000);
  say(`reopened ${JSON.stringify(await stats(page))}`);
  const acked = (await stats(page)).acked;
  await publishViaForm(page, "web/after-restart", N);
  await until(page, "ACKs after the restart", (n) => window.blPage.stats().acked >= n, acked + N);
  say(`published-after ${JSON.stringify(await stats(page))}`);
  await waitFile("site-published-after");
  await until(page, "the site's messages after the restart", (n) => Object.keys(window.blPage.topics()).filter((t) => t.startsWith("sensors/after/")).length >= n, N);
  say(`received-after ${JSON.stringify(await stats(page))}`);
  // 7. Only the TURN relay (a network without a direct path): the page links through it.
  const o7 = (await stats(page)).opens;
  await page.evaluate(() => { window.blPage.test.relayOnly = true; window.blPage.reconnect("lab: relay only"); });
  await until(page, "the link through the relay", (o) => window.blPage.state() === "open" && window.blPage.stats().opens > o, o7, 90000);
  say(`relayed ${JSON.stringify(await stats(page))}`);

  // 8. The site's broker is away: the site takes the page's messages but acknowledges
  // none; the page drops the link and, on the next channel, sends them again (dup).
  await waitFile("broker-down");
  const s8 = await stats(page);
  await publishViaForm(page, "web/while-down", N);
  say(`published-while-down ${JSON.stringify(await stats(page))}`);
  await page.evaluate(() => window.blPage.reconnect("lab: while the site's broker is away"));
  await until(page, "the next channel", (o) => window.blPage.state() === "open" && window.blPage.stats().opens > o, s8.opens, 90000);
  say(`resent ${JSON.stringify(await stats(page))}`);
  await waitFile("broker-up");
  await until(page, "every ACK", (n) => window.blPage.stats().acked >= n, s8.acked + N, 90000);
  say(`acked-after-broker ${JSON.stringify(await stats(page))}`);
  say(`foreign requests ${foreign}`);
  await browser.close();
  say("done");
}

main().catch((e) => {
  say(`error: ${e.stack ?? e}`);
  process.exit(1);
});
