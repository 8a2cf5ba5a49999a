// SPDX-License-Identifier: MIT
// wire.js - the frames of docs/PROTOCOL.md ("Frames") that the page speaks: HELLO, MSG
// and ACK, version 1. Anything else received is reported and dropped: the page's HELLO
// asks for no BATCH and answers no PING (features 0).
import { dec, enc } from "./bytes.js";

export const T_MSG = 1, T_ACK = 2, T_HELLO = 3;
const SITE_RE = /^[A-Za-z0-9._-]{1,64}$/;

function frame(type, flags, bodyLen) {
  const buf = new Uint8Array(4 + bodyLen);
  buf[0] = 1; buf[1] = type; buf[2] = flags;
  return { buf, view: new DataView(buf.buffer) };
}

// epoch: 8 random bytes, fixed for as long as the sender's sequence numbers run on.
export function encodeHello(site, maxMessage, epoch) {
  const s = enc.encode(site);
  const { buf, view } = frame(T_HELLO, 0, 1 + s.length + 16);
  buf[4] = s.length;
  buf.set(s, 5);
  view.setUint32(5 + s.length, 0); // features: none
  view.setUint32(9 + s.length, maxMessage);
  buf.set(epoch, 13 + s.length);
  return buf;
}

export function encodeMsg({ origin, seq, topic, payload, qos, retain }) {
  const o = enc.encode(origin), t = enc.encode(topic);
  const p = typeof payload === "string" ? enc.encode(payload) : payload;
  const { buf, view } = frame(T_MSG, (qos & 3) | (retain ? 4 : 0), 1 + o.length + 8 + 2 + t.length + 4 + 4 + p.length);
  let off = 4;
  buf[off++] = o.length; buf.set(o, off); off += o.length;
  view.setBigUint64(off, BigInt(seq)); off += 8;
  view.setUint16(off, t.length); off += 2;
  buf.set(t, off); off += t.length;
  view.setUint32(off, 0); off += 4; // no properties
  view.setUint32(off, p.length); off += 4;
  buf.set(p, off);
  return buf;
}

export function encodeAck(seqs) {
  const { buf, view } = frame(T_ACK, 0, 2 + 8 * seqs.length);
  view.setUint16(4, seqs.length);
  seqs.forEach((s, i) => view.setBigUint64(6 + 8 * i, BigInt(s)));
  return buf;
}

// {type, ...fields} or an Error naming what is wrong.
export function decode(buf) {
  if (buf.length < 4) return new Error("truncated frame");
  if (buf[0] !== 1) return new Error(`unsupported version ${buf[0]}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const need = (n) => { if (n > buf.length) throw new Error("truncated"); };
  try {
    switch (buf[1]) {
      case T_HELLO: {
        need(5);
        const n = buf[4];
        need(5 + n + 16);
        const site = dec.decode(buf.subarray(5, 5 + n));
        if (!SITE_RE.test(site)) return new Error("HELLO: bad site name");
        const epoch = Array.from(buf.subarray(13 + n, 21 + n), (b) => b.toString(16).padStart(2, "0")).join("");
        return { type: T_HELLO, site, features: view.getUint32(5 + n), maxMessage: view.getUint32(9 + n), epoch };
      }
      case T_MSG: {
        const flags = buf[2];
        if ((flags & 3) === 3 || flags & 0xf0) return new Error("MSG: bad flags");
        need(5);
        let off = 4;
        const olen = buf[off++];
        need(off + olen + 10);
        const origin = dec.decode(buf.subarray(off, off + olen)); off += olen;
        const seq = view.getBigUint64(off); off += 8;
        const tlen = view.getUint16(off); off += 2;
        need(off + tlen + 4);
        const topic = dec.decode(buf.subarray(off, off + tlen)); off += tlen;
        const plen = view.getUint32(off); off += 4;
        need(off + plen + 4);
        off += plen; // properties: not shown
        const n = view.getUint32(off); off += 4;
        if (off + n !== buf.length) return new Error("MSG: length mismatch");
        return { type: T_MSG, qos: flags & 3, retain: !!(flags & 4), origin, seq, topic, payload: buf.slice(off) };
      }
      case T_ACK: {
        need(6);
        const n = view.getUint16(4);
        if (buf.length !== 6 + 8 * n) return new Error("ACK: length mismatch");
        const seqs = [];
        for (let i = 0; i < n; i++) seqs.push(view.getBigUint64(6 + 8 * i));
        return { type: T_ACK, seqs };
      }
      default:
        return new Error(`frame type ${buf[1]} not spoken by this page`);
    }
  } catch (e) {
    return new Error(`${e.message} frame`);
  }
}
