// SPDX-License-Identifier: MIT
// link.js - the page's link to one site: sealed signalling over MQTT over WebSockets
// (mqtt.js), an RTCPeerConnection whose `brokerless` data channel carries the frames
// (docs/PROTOCOL.md "Browser peers"). The site offers; the page answers, is the DTLS
// client and opens the channel. After a failure, a closed channel or a site that went
// away, the page asks for a new session ("restart") and answers the next offer.
import { hex } from "./bytes.js";
import { throwawayKey } from "./identity.js";
import { inboxTopic, seal, sealKey, unseal } from "./seal.js";
import { checkMessage, digestOf, MAX_AGE_MS, signMessage } from "./signal.js";
import * as wire from "./wire.js";

const MAX_MESSAGE = 262144;
const RETRY_MS = [1000, 2000, 4000, 8000];
const SEEN_MAX = 65536;

function sdpFingerprint(sdp) {
  const m = /^a=fingerprint:sha-256 ([0-9A-Fa-f:]{95})\s*$/m.exec(sdp);
  return m ? m[1].toUpperCase() : null;
}

export class Link extends EventTarget {
  // cfg: {me, site, sitePin, secret, broker, stun}; identity: identity.js's.
  constructor(cfg, identity, test = {}) {
    super();
    this.cfg = cfg;
    this.id = identity;
    this.test = test; // lab hooks: wrongKey, badDtlsFingerprint, relayOnly
    this.state = "idle";
    this.sid = null;
    this.lastTs = 0;
    this.lastOfferTs = 0;
    this.retries = 0;
    this.seq = 0; // our messages' sequence numbers, with this epoch (HELLO)
    this.epoch = crypto.getRandomValues(new Uint8Array(8));
    this.pending = new Map(); // seq -> our MSG frame of QoS 1 or 2, until its ACK
    this.seenIn = new Map(); // "origin/seq" of the MSGs taken in (the last SEEN_MAX)
    this.siteEpoch = null; // of the site's last HELLO
    this.stats = { sent: 0, sentWrongKey: 0, badFpAnswers: 0, refused: 0, msgIn: 0, dupIn: 0, msgOut: 0, resent: 0, acked: 0, sessions: 0, opens: 0 };
    this.queue = Promise.resolve();
    this.seen = new Map(); // digest of an accepted message's signed bytes -> its ts
  }

  log(text) { this.dispatchEvent(new CustomEvent("log", { detail: text })); }
  setState(s, why) {
    this.state = s;
    this.dispatchEvent(new CustomEvent("state", { detail: { state: s, why } }));
  }

  async start() {
    const { secret, me, site, broker } = this.cfg;
    this.key = await sealKey(secret);
    this.myInbox = await inboxTopic(secret, me);
    this.siteInbox = await inboxTopic(secret, site);
    this.setState("signalling", `connecting to ${broker}`);
    // A fresh client id each time, as the daemon does (docs/PROTOCOL.md).
    const clientId = "bl-web-" + hex(crypto.getRandomValues(new Uint8Array(8)));
    this.mqtt = globalThis.mqtt.connect(broker, { protocolVersion: 5, clean: true, clientId, reconnectPeriod: 2000, connectTimeout: 10000 });
    this.mqtt.on("connect", () => {
      this.log(`signalling: connected to ${broker}`);
      this.mqtt.subscribe(this.myInbox, { qos: 1 }, (err) => {
        if (err) return this.log(`signalling: cannot subscribe: ${err.message}`);
        if (this.state !== "open") this.send("restart", this.sid ?? "00");
      });
    });
    this.mqtt.on("error", (e) => this.log(`signalling: ${e.message}`));
    this.mqtt.on("message", (topic, payload) => {
      if (topic === this.myInbox) this.receive(new Uint8Array(payload)).catch((e) => this.log(`signalling: ${e.message}`));
    });
  }

  // Sealed, signed, in order (a candidate never overtakes its answer).
  send(type, sid, body) {
    this.queue = this.queue.then(async () => {
      const now = Date.now();
      this.lastTs = now > this.lastTs ? now : this.lastTs + 1;
      const m = { v: 1, from: this.cfg.me, to: this.cfg.site, sid, ts: this.lastTs, type, cert: this.id.spkiB64 };
      if (body !== undefined) m.body = body;
      const wrong = !!this.test.wrongKey;
      if (wrong && !this.wrongKey) this.wrongKey = await throwawayKey();
      await signMessage(m, wrong ? this.wrongKey : this.id.privateKey);
      this.mqtt.publish(this.siteInbox, await seal(this.key, this.siteInbox, m), { qos: 1 });
      this.stats.sent++;
      if (wrong) this.stats.sentWrongKey++;
    }).catch((e) => this.log(`signalling: cannot send ${type}: ${e.message}`));
    return this.queue;
  }

  refuse(why) {
    this.stats.refused++;
    this.log(`signalling: refused a message: ${why}`);
  }

  async receive(buf) {
    const m = await unseal(this.key, this.myInbox, buf);
    if (m instanceof Error) return this.refuse(m.message);
    const why = await checkMessage(m, { me: this.cfg.me, site: this.cfg.site, pinned: this.cfg.sitePin, now: Date.now() });
    if (why) return this.refuse(why);
    // A replay within the freshness window is refused; older ones are stale anyway.
    const now = Date.now();
    for (const [d, ts] of this.seen) if (now - ts > MAX_AGE_MS) this.seen.delete(d);
    const digest = await digestOf(m);
    if (this.seen.has(digest)) return this.refuse(`a replay of a ${m.type} of ${m.ts}`);
    this.seen.set(digest, m.ts);
    switch (m.type) {
      case "offer":
        if (m.ts <= this.lastOfferTs) return this.refuse("an offer not newer than the last");
        this.lastOfferTs = m.ts;
        return this.answer(m.sid, m.body);
      case "cand":
        if (m.sid !== this.sid || !this.pc) return;
        if (typeof m.body !== "string") return this.refuse("a candidate without its line");
        return this.pc.addIceCandidate({ candidate: m.body.replace(/^a=/, ""), sdpMid: "0" })
          .catch((e) => this.log(`ice: ignored a candidate: ${e.message}`));
      case "bye":
        if (m.sid === this.sid) this.fail("the site closed the session");
        return;
      default:
        return; // eoc: nothing to do; restart and answer are not for an answerer
    }
  }

  close() {
    if (this.dc) { this.dc.onclose = null; this.dc.close(); }
    if (this.pc) { this.pc.onconnectionstatechange = null; this.pc.close(); }
    this.dc = this.pc = null;
    clearTimeout(this.retryTimer);
  }

  async answer(sid, sdp) {
    const fp = sdpFingerprint(sdp ?? "");
    if (!fp || fp !== this.cfg.sitePin.toUpperCase())
      return this.refuse(`the offer names DTLS certificate ${fp}, the site's pin is ${this.cfg.sitePin}`);
    this.close();
    this.sid = sid;
    this.stats.sessions++;
    this.setState("connecting", `session ${sid}`);
    const ice = this.cfg.stun ? [{ urls: `stun:${this.cfg.stun}` }] : [];
    if (this.cfg.turn)
      ice.push({ urls: `turn:${this.cfg.turn}?transport=udp`, username: this.cfg.turnUser, credential: this.cfg.turnPass });
    // Lab hook relayOnly: only the TURN relay (as [ice] force_relay does for a site).
    const pc = (this.pc = new RTCPeerConnection({ iceServers: ice, iceTransportPolicy: this.test.relayOnly ? "relay" : "all" }));
    let answered = false;
    const early = [];
    pc.onicecandidate = (e) => {
      if (pc !== this.pc) return;
      const body = e.candidate && e.candidate.candidate ? "a=" + e.candidate.candidate : null;
      if (!answered) return early.push(body);
      if (body) this.send("cand", sid, body);
      else if (!e.candidate) this.send("eoc", sid);
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      if (pc.connectionState === "failed" || pc.connectionState === "closed")
        this.fail(`connection ${pc.connectionState}`);
    };
    try {
      await pc.setRemoteDescription({ type: "offer", sdp });
      // The DTLS client opens the channel (docs/PROTOCOL.md "The channel").
      this.openChannel(pc.createDataChannel("brokerless", { ordered: true }));
      await pc.setLocalDescription(await pc.createAnswer());
      let body = pc.localDescription.sdp;
      if (this.test.badDtlsFingerprint) {
        // Lab: sign an answer that names another certificate than the one DTLS presents.
        const other = Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, "0").toUpperCase()).join(":");
        body = body.replace(/^a=fingerprint:sha-256 .*$/m, `a=fingerprint:sha-256 ${other}`);
        this.stats.badFpAnswers++;
        this.badFps = [...(this.badFps ?? []), other];
      }
      await this.send("answer", sid, body);
      answered = true;
      for (const c of early) c ? this.send("cand", sid, c) : this.send("eoc", sid);
      // ICE, DTLS and the channel get 30 s (the daemon's DTLS alone gives up after 30 s).
      this.retryTimer = setTimeout(() => {
        if (pc === this.pc && this.state === "connecting") this.fail("no open channel within 30 s");
      }, 30000);
    } catch (e) {
      this.fail(`cannot answer: ${e.message}`);
    }
  }

  openChannel(dc) {
    this.dc = dc;
    dc.binaryType = "arraybuffer";
    dc.onopen = () => {
      this.retries = 0;
      this.stats.opens++;
      dc.send(wire.encodeHello(this.cfg.me, MAX_MESSAGE, this.epoch));
      // What the site had not acknowledged goes again, marked dup: the site recognises
      // a resend by (origin, seq) under our unchanged epoch and only acknowledges it.
      for (const frame of this.pending.values()) {
        frame[2] |= 8;
        dc.send(frame);
        this.stats.resent++;
      }
      this.setState("open", `session ${this.sid}`);
    };
    dc.onclose = () => { if (dc === this.dc) this.fail("channel closed"); };
    dc.onmessage = (e) => this.frame(new Uint8Array(e.data instanceof ArrayBuffer ? e.data : new TextEncoder().encode(e.data)));
  }

  frame(buf) {
    const f = wire.decode(buf);
    if (f instanceof Error) return this.log(`link: dropped a frame: ${f.message}`);
    if (f.type === wire.T_HELLO) {
      if (f.site !== this.cfg.site) this.log(`link: HELLO from "${f.site}", expected "${this.cfg.site}"`);
      if (this.siteEpoch !== null && f.epoch !== this.siteEpoch) this.seenIn.clear(); // the site lost its state
      this.siteEpoch = f.epoch;
      this.dispatchEvent(new CustomEvent("hello", { detail: f }));
    } else if (f.type === wire.T_MSG) {
      const id = `${f.origin}/${f.seq}`;
      if (f.seq > 0n && this.seenIn.has(id)) {
        this.stats.dupIn++; // a resend of one we took in: acknowledged again, not shown again
      } else {
        if (f.seq > 0n) {
          this.seenIn.set(id, true);
          if (this.seenIn.size > SEEN_MAX) this.seenIn.delete(this.seenIn.keys().next().value);
        }
        this.stats.msgIn++;
        this.dispatchEvent(new CustomEvent("message", { detail: f }));
      }
      if (f.qos > 0 && f.seq > 0n) this.dc.send(wire.encodeAck([f.seq]));
    } else if (f.type === wire.T_ACK) {
      for (const s of f.seqs) if (this.pending.delete(s)) this.stats.acked++;
      this.dispatchEvent(new CustomEvent("acked", { detail: f.seqs.length }));
    }
  }

  // Publish at the site, under this peer's `in` rules there. false when the link is down.
  publish(topic, payload, qos = 1, retain = false) {
    if (!this.dc || this.dc.readyState !== "open") return false;
    const seq = BigInt(++this.seq);
    const frame = wire.encodeMsg({ origin: this.cfg.me, seq, topic, payload, qos, retain });
    this.dc.send(frame);
    if (qos > 0) this.pending.set(seq, frame);
    this.stats.msgOut++;
    return true;
  }

  fail(why) {
    if (this.state === "retrying") return;
    this.close();
    const delay = RETRY_MS[Math.min(this.retries++, RETRY_MS.length - 1)];
    this.setState("retrying", `${why}; asking the site for a new session in ${delay / 1000} s`);
    this.retryTimer = setTimeout(() => {
      this.setState("signalling", "asked for a new session");
      this.send("restart", this.sid ?? "00");
      // No offer within 15 s (the site is away): ask again.
      this.retryTimer = setTimeout(() => { if (this.state === "signalling") this.fail("no offer"); }, 15000);
    }, delay);
  }
}
