// SPDX-License-Identifier: MIT
// bytes.js - base64, hex, UTF-8 and fingerprints.
export const enc = new TextEncoder();
export const dec = new TextDecoder("utf-8", { fatal: true });

export function b64(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function unb64(text) {
  const s = atob(text.replace(/\s+/g, ""));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

// "AB:CD:..." of the SHA-256 of der, as brokerless writes fingerprints.
export async function fingerprint(der) {
  const md = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
  return Array.from(md, (b) => b.toString(16).padStart(2, "0").toUpperCase()).join(":");
}

export function sameFingerprint(a, b) {
  return typeof a === "string" && typeof b === "string" && a.toUpperCase() === b.toUpperCase();
}
