// SPDX-License-Identifier: MIT
// signal.js - what the page signs and what it accepts (docs/PROTOCOL.md "Signatures",
// "Browser peers"): its own messages signed with its WebCrypto key, the site's checked
// against the site's pinned certificate fingerprint.
import { b64, concat, enc, fingerprint, hex, sameFingerprint, unb64 } from "./bytes.js";
import { sigDerToRaw, sigRawToDer, spkiOfCert } from "./der.js";

const ECDSA = { name: "ECDSA", hash: "SHA-256" };
export const MAX_AGE_MS = 120000;
const TYPES = ["offer", "answer", "cand", "eoc", "bye", "restart"];

function signedBytes(m) {
  const parts = ["brokerless-signal-v1", m.from, m.to, m.sid, String(m.ts), m.type, m.body ?? ""];
  return concat(...parts.map((p) => concat(enc.encode(p), Uint8Array.of(0))));
}

// The SHA-256 of m's signed bytes, hex: the page's replay cache key (as sigcheck.c's).
export async function digestOf(m) {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", signedBytes(m))));
}

// Sign m with key; m.cert is our public key (SPKI, base64).
export async function signMessage(m, key) {
  const raw = new Uint8Array(await crypto.subtle.sign(ECDSA, key, signedBytes(m)));
  m.sig = b64(sigRawToDer(raw));
  return m;
}

// Is m, addressed to `me`, a fresh message of `site` signed by the certificate pinned as
// `pinned`? Returns null when it is, else why not.
export async function checkMessage(m, { me, site, pinned, now }) {
  if (typeof m.from !== "string" || typeof m.to !== "string" || typeof m.sid !== "string" ||
      typeof m.type !== "string" || !TYPES.includes(m.type) || !Number.isInteger(m.ts))
    return "malformed";
  if (m.to !== me || m.from !== site) return `misdirected (from ${m.from} to ${m.to})`;
  if (Math.abs(now - m.ts) > MAX_AGE_MS) return `stale (${now - m.ts} ms off our clock)`;
  if (typeof m.cert !== "string" || typeof m.sig !== "string") return "unsigned";
  let der, spki, raw;
  try {
    der = unb64(m.cert);
    spki = spkiOfCert(der);
    raw = sigDerToRaw(unb64(m.sig));
  } catch (e) {
    return `bad certificate or signature (${e.message})`;
  }
  const fp = await fingerprint(der);
  if (!sameFingerprint(fp, pinned)) return `certificate ${fp} is not the pinned ${pinned}`;
  try {
    const key = await crypto.subtle.importKey("spki", spki, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    if (!(await crypto.subtle.verify(ECDSA, key, raw, signedBytes(m)))) return "signature does not verify";
  } catch (e) {
    return `cannot verify (${e.message})`;
  }
  return null;
}
