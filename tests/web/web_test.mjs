// SPDX-License-Identifier: MIT
// web_test.mjs - the browser peer page's pure modules under Node's WebCrypto (node:test):
// the frames against docs/PROTOCOL.md's example, ECDSA signatures between raw and DER,
// topic filters, and envelope v2 against the one the C unit tests and the fuzz corpus
// hold (fuzz/corpus/fuzz_seal/sealed_answer_v2, made by another implementation).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { sigDerToRaw, sigRawToDer } from "../../web/js/der.js";
import { inboxTopic, seal, sealKey, unseal } from "../../web/js/seal.js";
import { filterValid, matches, Topics } from "../../web/js/topics.js";
import * as wire from "../../web/js/wire.js";

const SRC = new URL("../../", import.meta.url);

test("MSG as docs/PROTOCOL.md's example, less the expiry property", () => {
  const m = wire.encodeMsg({ origin: "siteA", seq: 7, topic: "a/b", payload: "xy", qos: 1, retain: true });
  assert.equal(Buffer.from(m).toString("hex"), "01010500" + "057369746541" + "0000000000000007" + "0003612f62" + "00000000" + "000000027879");
  const d = wire.decode(m);
  assert.deepEqual([d.type, d.qos, d.retain, d.origin, d.seq, d.topic], [wire.T_MSG, 1, true, "siteA", 7n, "a/b"]);
});

test("MSG with properties, ACK and HELLO decode; malformed frames are refused", () => {
  // The PROTOCOL.md example with its 9-byte expiry property.
  const hex = "01010500057369746541000000000000000700036" + "12f62000000090200000004" + "0a0b0c0d000000027879";
  const d = wire.decode(Uint8Array.from(Buffer.from(hex, "hex")));
  assert.equal(d.topic, "a/b");
  assert.equal(Buffer.from(d.payload).toString(), "xy");
  assert.deepEqual(wire.decode(wire.encodeAck([1n, 2n])).seqs, [1n, 2n]);
  const h = wire.decode(wire.encodeHello("browser1", 262144, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 0xff)));
  assert.deepEqual([h.site, h.features, h.maxMessage, h.epoch], ["browser1", 0, 262144, "01020304050607ff"]);
  assert.ok(wire.decode(Uint8Array.of(2, 1, 0, 0)) instanceof Error);
  assert.ok(wire.decode(Uint8Array.of(1, 9, 0, 0)) instanceof Error);
  assert.ok(wire.decode(Uint8Array.of(1, 1, 3, 0)) instanceof Error);
  const full = wire.encodeMsg({ origin: "a", seq: 1, topic: "t", payload: "p", qos: 0 });
  for (let n = 0; n < full.length; n++) assert.ok(wire.decode(full.slice(0, n)) instanceof Error, `truncated at ${n}`);
  assert.ok(wire.decode(Uint8Array.of(...full, 0)) instanceof Error);
});

test("ECDSA signatures: WebCrypto's r||s to DER and back, and OpenSSL-style DER verifies", async () => {
  const { privateKey, publicKey } = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  const alg = { name: "ECDSA", hash: "SHA-256" };
  for (let i = 0; i < 50; i++) {
    const data = crypto.getRandomValues(new Uint8Array(40));
    const raw = new Uint8Array(await crypto.subtle.sign(alg, privateKey, data));
    const der = sigRawToDer(raw);
    assert.deepEqual(sigDerToRaw(der), raw);
    assert.ok(await crypto.subtle.verify(alg, publicKey, sigDerToRaw(der), data));
  }
  // Leading zeros and high bits: r = 0x00..01, s = 0xff..ff.
  const raw = new Uint8Array(64);
  raw[31] = 1;
  raw.fill(0xff, 32);
  const der = sigRawToDer(raw);
  assert.deepEqual([...der.slice(0, 5)], [0x30, 3 + 2 + 33, 2, 1, 1]);
  assert.deepEqual(sigDerToRaw(der), raw);
  assert.throws(() => sigDerToRaw(Uint8Array.of(0x30, 2, 2, 0)));
});

test("topic filters", () => {
  assert.ok(matches("#", "a/b") && matches("a/+", "a/b") && matches("a/#", "a") && !matches("a/+", "a/b/c"));
  assert.ok(!matches("#", "$SYS/x") && matches("$SYS/#", "$SYS/x"));
  assert.ok(filterValid("a/+/#") && !filterValid("a/#/b") && !filterValid("a+") && !filterValid(""));
  const t = new Topics();
  t.add("sensors/1", new Uint8Array(), false);
  t.add("other", new Uint8Array(), false);
  t.setFilter("sensors/#");
  assert.deepEqual([...t.map.keys()], ["sensors/1"]);
  assert.equal(t.add("other", new Uint8Array(), false), false);
});

test("envelope v2: the C side's known answer opens; a round trip; tampering refused", async () => {
  const key = await sealKey("fuzz secret");
  const topic = "bl/0123456789abcdef0123456789abcdef";
  const kat = new Uint8Array(readFileSync(new URL("fuzz/corpus/fuzz_seal/sealed_answer_v2", SRC))).slice(1);
  const m = await unseal(key, topic, kat);
  assert.deepEqual([m.from, m.to, m.type, m.cert], ["browser1", "home", "answer", "AAAA"]);
  const obj = { v: 1, from: "web", to: "home", sid: "00", ts: 1, type: "restart" };
  const buf = await seal(key, topic, obj);
  assert.equal(buf[0], 2);
  assert.deepEqual(await unseal(key, topic, buf), obj);
  assert.ok((await unseal(key, "bl/other", buf)) instanceof Error);
  buf[20] ^= 1;
  assert.ok((await unseal(key, topic, buf)) instanceof Error);
  buf[20] ^= 1;
  buf[0] = 1;
  assert.match((await unseal(key, topic, buf)).message, /version 1/);
  assert.match(await inboxTopic("fuzz secret", "home"), /^bl\/[0-9a-f]{32}$/);
});
