// Frames: the contents of a DATA packet once decrypted (docs/PROTOCOL.md "Frames").

import { APP_MESSAGE_MAX_BYTES, MAX_ACK_RANGES, MAX_PACKET_NUMBER, MAX_STREAMS, SHORT_TEXT_MAX_BYTES } from '../limits.js';
import { decodeWith, type Decoded, Reader, utf8Bytes, varintSize, WireError, Writer } from './buf.js';

export const FrameType = {
  Padding: 0x00,
  Ping: 0x01,
  Ack: 0x02,
  Msg: 0x03,
  Close: 0x04,
  PathChallenge: 0x05,
  PathResponse: 0x06,
} as const;

/** An inclusive range of packet numbers. */
export interface AckRange {
  hi: number;
  lo: number;
}

export type Frame =
  | { type: 'padding' }
  | { type: 'ping' }
  /** ranges descend: ranges[0].hi is the largest acknowledged packet number. */
  | { type: 'ack'; ranges: AckRange[]; delayUs: number }
  | { type: 'msg'; stream: number; seq: number; total: number; offset: number; data: Uint8Array }
  | { type: 'close'; code: number; reason: string }
  | { type: 'path-challenge'; data: Uint8Array }
  | { type: 'path-response'; data: Uint8Array };

export const PATH_DATA_LEN = 8;

/** Whether a frame asks the receiver for an acknowledgement. */
export function isAckEliciting(f: Frame): boolean {
  return f.type !== 'ack' && f.type !== 'padding';
}

export function encodeFrame(w: Writer, f: Frame): void {
  switch (f.type) {
    case 'padding':
      w.u8(FrameType.Padding);
      return;
    case 'ping':
      w.u8(FrameType.Ping);
      return;
    case 'ack': {
      const first = f.ranges[0]!;
      w.u8(FrameType.Ack).varint(first.hi).varint(f.delayUs).varint(f.ranges.length - 1).varint(first.hi - first.lo);
      let prevLo = first.lo;
      for (let i = 1; i < f.ranges.length; i++) {
        const r = f.ranges[i]!;
        // RFC 9000 §19.3.1: gap counts the unacknowledged packets between ranges, minus one.
        w.varint(prevLo - r.hi - 2).varint(r.hi - r.lo);
        prevLo = r.lo;
      }
      return;
    }
    case 'msg':
      w.u8(FrameType.Msg).varint(f.stream).varint(f.seq).varint(f.total).varint(f.offset).lenBytes(f.data);
      return;
    case 'close':
      w.u8(FrameType.Close).varint(f.code).text(f.reason);
      return;
    case 'path-challenge':
      w.u8(FrameType.PathChallenge).bytes(f.data);
      return;
    case 'path-response':
      w.u8(FrameType.PathResponse).bytes(f.data);
      return;
  }
}

/** The exact encoded size of a frame, for packing packets. */
export function frameSize(f: Frame): number {
  switch (f.type) {
    case 'padding':
    case 'ping':
      return 1;
    case 'ack': {
      const first = f.ranges[0]!;
      let n = 1 + varintSize(first.hi) + varintSize(f.delayUs) + varintSize(f.ranges.length - 1) + varintSize(first.hi - first.lo);
      let prevLo = first.lo;
      for (let i = 1; i < f.ranges.length; i++) {
        const r = f.ranges[i]!;
        n += varintSize(prevLo - r.hi - 2) + varintSize(r.hi - r.lo);
        prevLo = r.lo;
      }
      return n;
    }
    case 'msg':
      return 1 + varintSize(f.stream) + varintSize(f.seq) + varintSize(f.total) + varintSize(f.offset) + varintSize(f.data.length) + f.data.length;
    case 'close': {
      const n = utf8Bytes(f.reason).length;
      return 1 + varintSize(f.code) + varintSize(n) + n;
    }
    case 'path-challenge':
    case 'path-response':
      return 1 + PATH_DATA_LEN;
  }
}

/** The largest MSG frame header: type, stream, seq (any), total, offset, length. */
export const MSG_HEADER_MAX = 1 + varintSize(MAX_STREAMS) + 8 + varintSize(APP_MESSAGE_MAX_BYTES) * 3;

function readFrame(r: Reader): Frame {
  const t = r.u8('frame type');
  switch (t) {
    case FrameType.Padding:
      return { type: 'padding' };
    case FrameType.Ping:
      return { type: 'ping' };
    case FrameType.Ack: {
      const largest = r.varint('ack largest', MAX_PACKET_NUMBER);
      const delayUs = r.varint('ack delay');
      const count = r.varint('ack range count', MAX_ACK_RANGES - 1);
      const firstLen = r.varint('ack first range');
      if (firstLen > largest) throw new WireError('bad-value', 'ack range below zero');
      const ranges: AckRange[] = [{ hi: largest, lo: largest - firstLen }];
      let prevLo = largest - firstLen;
      for (let i = 0; i < count; i++) {
        const gap = r.varint('ack gap');
        const len = r.varint('ack range');
        const hi = prevLo - gap - 2;
        const lo = hi - len;
        if (hi < 0 || lo < 0) throw new WireError('bad-value', 'ack range below zero');
        ranges.push({ hi, lo });
        prevLo = lo;
      }
      return { type: 'ack', ranges, delayUs };
    }
    case FrameType.Msg: {
      const stream = r.varint('stream', MAX_STREAMS - 1);
      const seq = r.varint('seq');
      const total = r.varint('total', APP_MESSAGE_MAX_BYTES);
      const offset = r.varint('offset', APP_MESSAGE_MAX_BYTES);
      const data = r.lenBytes(APP_MESSAGE_MAX_BYTES, 'msg data');
      if (offset + data.length > total) throw new WireError('bad-length', 'fragment runs past its message');
      if (data.length === 0 && total !== 0) throw new WireError('bad-length', 'empty fragment');
      return { type: 'msg', stream, seq, total, offset, data };
    }
    case FrameType.Close:
      return { type: 'close', code: r.varint('close code', 0xffff), reason: r.text(SHORT_TEXT_MAX_BYTES, 'close reason') };
    case FrameType.PathChallenge:
      return { type: 'path-challenge', data: r.bytesN(PATH_DATA_LEN, 'path challenge') };
    case FrameType.PathResponse:
      return { type: 'path-response', data: r.bytesN(PATH_DATA_LEN, 'path response') };
    default:
      throw new WireError('bad-type', `frame type 0x${t.toString(16)}`);
  }
}

/** Decodes a packet's frames; any malformed frame fails the whole packet. Never throws. */
export function decodeFrames(bytes: Uint8Array): Decoded<Frame[]> {
  return decodeWith(bytes, (r) => {
    const frames: Frame[] = [];
    while (r.remaining > 0) {
      const f = readFrame(r);
      // Runs of padding collapse to one frame: padding carries nothing.
      if (f.type === 'padding' && frames[frames.length - 1]?.type === 'padding') continue;
      frames.push(f);
    }
    return frames;
  });
}

export function encodeFrames(frames: Frame[], sizeHint = 256): Uint8Array {
  const w = new Writer(sizeHint);
  for (const f of frames) encodeFrame(w, f);
  return w.finish();
}
