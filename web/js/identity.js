// SPDX-License-Identifier: MIT
// identity.js - this browser's key: an ECDSA P-256 pair made once by WebCrypto with a
// private key that cannot be exported, kept in IndexedDB (docs/PROTOCOL.md, "Browser
// peers"). Its fingerprint is the SHA-256 of the public key's SubjectPublicKeyInfo.
import { b64, fingerprint } from "./bytes.js";

const DB = "brokerless", STORE = "keys", ID = "identity";
const ALG = { name: "ECDSA", namedCurve: "P-256" };

function idb(mode, fn) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const tx = open.result.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => { open.result.close(); resolve(req.result); };
      tx.onerror = () => { open.result.close(); reject(tx.error); };
    };
  });
}

async function describe(pair) {
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  return { privateKey: pair.privateKey, spki, spkiB64: b64(spki), fingerprint: await fingerprint(spki) };
}

// The stored identity, made and stored on first use.
export async function loadIdentity() {
  let pair = await idb("readonly", (s) => s.get(ID));
  if (!pair) {
    pair = await crypto.subtle.generateKey(ALG, false, ["sign", "verify"]);
    await idb("readwrite", (s) => s.put({ privateKey: pair.privateKey, publicKey: pair.publicKey }, ID));
  }
  return describe(pair);
}

// A throwaway key (the lab's "wrong signing key": never stored, never pinned).
export async function throwawayKey() {
  return (await crypto.subtle.generateKey(ALG, false, ["sign", "verify"])).privateKey;
}
