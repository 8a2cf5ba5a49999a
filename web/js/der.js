// SPDX-License-Identifier: MIT
// der.js - the little DER the page needs: the SubjectPublicKeyInfo inside a site's X.509
// certificate, and ECDSA signatures between WebCrypto's raw r||s and DER.

// One TLV at off: {tag, start (of the value), end}. Definite lengths only.
function tlv(buf, off) {
  if (off + 2 > buf.length) throw new Error("DER: truncated");
  const tag = buf[off];
  let len = buf[off + 1];
  let start = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 3 || start + n > buf.length) throw new Error("DER: bad length");
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | buf[start + i];
    start += n;
  }
  if (start + len > buf.length) throw new Error("DER: truncated");
  return { tag, start, end: start + len, off };
}

// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serial, signature,
// issuer, validity, subject, subjectPublicKeyInfo, ... }, ... }
export function spkiOfCert(der) {
  const cert = tlv(der, 0);
  if (cert.tag !== 0x30 || cert.end !== der.length) throw new Error("not a certificate");
  const tbs = tlv(der, cert.start);
  if (tbs.tag !== 0x30) throw new Error("not a certificate");
  let p = tbs.start;
  let t = tlv(der, p);
  if (t.tag === 0xa0) { p = t.end; t = tlv(der, p); } // version
  for (let i = 0; i < 5; i++) { p = t.end; t = tlv(der, p); } // serial .. subject
  if (t.tag !== 0x30) throw new Error("no public key in the certificate");
  return der.slice(t.off, t.end);
}

function intBytes(b) {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.slice(i);
  return v[0] & 0x80 ? Uint8Array.of(0, ...v) : v;
}

// WebCrypto's ECDSA P-256 signature (r || s, 64 bytes) as DER.
export function sigRawToDer(raw) {
  const r = intBytes(raw.slice(0, 32)), s = intBytes(raw.slice(32, 64));
  const body = Uint8Array.of(2, r.length, ...r, 2, s.length, ...s);
  return Uint8Array.of(0x30, body.length, ...body);
}

// A DER ECDSA P-256 signature as WebCrypto's r || s.
export function sigDerToRaw(der) {
  const seq = tlv(der, 0);
  if (seq.tag !== 0x30 || seq.end !== der.length) throw new Error("signature: not DER");
  const r = tlv(der, seq.start), s = tlv(der, r.end);
  if (r.tag !== 2 || s.tag !== 2 || s.end !== seq.end) throw new Error("signature: not DER");
  const out = new Uint8Array(64);
  for (const [n, at] of [[r, 0], [s, 32]]) {
    let v = der.slice(n.start, n.end);
    while (v.length > 32 && v[0] === 0) v = v.slice(1);
    if (v.length > 32) throw new Error("signature: integer too long");
    out.set(v, at + 32 - v.length);
  }
  return out;
}
