// SPDX-License-Identifier: MIT
// seal.js - sealed signalling, envelope version 2 (docs/PROTOCOL.md "Envelope"): keys and
// inbox topics by HKDF-SHA256 from the network secret, AES-256-GCM with AAD = version
// byte + topic. The page opens only version 2: a site answers a browser in it.
import { concat, dec, enc, hex } from "./bytes.js";

export const SEAL_V2 = 2;
const SALT = enc.encode("brokerless/v1");

async function hkdf(secret, info, bits) {
  const ikm = await crypto.subtle.importKey("raw", enc.encode(secret), "HKDF", false, ["deriveBits"]);
  return new Uint8Array(await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: SALT, info: enc.encode(info) }, ikm, bits));
}

export async function sealKey(secret) {
  const raw = await hkdf(secret, "signal key", 256);
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

export async function inboxTopic(secret, site) {
  return "bl/" + hex(await hkdf(secret, "inbox:" + site, 128));
}

function aad(topic) {
  return concat(Uint8Array.of(SEAL_V2), enc.encode(topic));
}

export async function seal(key, topic, obj) {
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: nonce, additionalData: aad(topic), tagLength: 128 },
    key, enc.encode(JSON.stringify(obj))));
  return concat(Uint8Array.of(SEAL_V2), nonce, ct);
}

// The JSON object, or an Error saying why not.
export async function unseal(key, topic, buf) {
  if (buf.length < 29) return new Error("truncated");
  if (buf[0] !== SEAL_V2) return new Error(`envelope version ${buf[0]}: this page opens only version 2`);
  let pt;
  try {
    pt = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: buf.slice(1, 13), additionalData: aad(topic), tagLength: 128 },
      key, buf.slice(13));
  } catch {
    return new Error("authentication failed");
  }
  try {
    const o = JSON.parse(dec.decode(pt));
    if (typeof o !== "object" || o === null || o.v !== 1) return new Error("not a version 1 body");
    return o;
  } catch {
    return new Error("malformed JSON");
  }
}
