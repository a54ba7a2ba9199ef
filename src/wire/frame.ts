// Frames: the contents of a DATA packet once decrypted (docs/PROTOCOL.md "Frames").

import { APP_MESSAGE_MAX_BYTES, MAX_ACK_RANGES, MAX_PACKET_NUMBER, MAX_STREAMS, SHORT_TEXT_MAX_BYTES } from '../limits.js';
import { decodeWith, type Decoded, Reader, utf8Bytes, VARINT_MAX, varintSize, WireError, Writer } from './buf.js';

export const FrameType = {
  Padding: 0x00,
  Ping: 0x01,
  Ack: 0x02,
  Msg: 0x03,
  Close: 0x04,
  PathChallenge: 0x05,
  PathResponse: 0x06,
  /** A whole message in one frame (offset 0, total = data length): MSG without its two redundant fields,
   * which is nearly every chat message. Decodes to the same 'msg' frame. */
  MsgWhole: 0x07,
  /** A whole message that follows the packet's previous message frame on its stream (seq + 1): only its
   * data. Queued messages of one conversation share packets, and this is most of their framing. */
  MsgNext: 0x08,
} as const;

/** What a packet's previous MSG frame was, so the next whole message of its stream can be MSG_NEXT. */
export interface PacketContext {
  stream: number;
  seq: number;
}

export function newPacketContext(): PacketContext {
  return { stream: -1, seq: -1 };
}

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

/** Writes one frame; with a packet context, a whole message right after its predecessor is MSG_NEXT. */
export function encodeFrame(w: Writer, f: Frame, ctx?: PacketContext): void {
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
    case 'msg': {
      const whole = f.offset === 0 && f.total === f.data.length;
      if (whole && ctx && ctx.stream === f.stream && ctx.seq + 1 === f.seq) w.u8(FrameType.MsgNext).lenBytes(f.data);
      else if (whole) w.u8(FrameType.MsgWhole).varint(f.stream).varint(f.seq).lenBytes(f.data);
      else w.u8(FrameType.Msg).varint(f.stream).varint(f.seq).varint(f.total).varint(f.offset).lenBytes(f.data);
      if (ctx) {
        ctx.stream = f.stream;
        ctx.seq = f.seq;
      }
      return;
    }
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

/** The encoded size of a frame without a packet context: the most it takes, for packing packets. */
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
    case 'msg': {
      const fields = f.offset === 0 && f.total === f.data.length ? 0 : varintSize(f.total) + varintSize(f.offset);
      return 1 + varintSize(f.stream) + varintSize(f.seq) + fields + varintSize(f.data.length) + f.data.length;
    }
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

function readFrame(r: Reader, ctx: PacketContext): Frame {
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
      return msgFrame(ctx, stream, seq, total, offset, data);
    }
    case FrameType.MsgWhole: {
      const stream = r.varint('stream', MAX_STREAMS - 1);
      const seq = r.varint('seq');
      const data = r.lenBytes(APP_MESSAGE_MAX_BYTES, 'msg data');
      return msgFrame(ctx, stream, seq, data.length, 0, data);
    }
    case FrameType.MsgNext: {
      if (ctx.stream < 0) throw new WireError('bad-value', 'MSG_NEXT without a message before it');
      if (ctx.seq + 1 > VARINT_MAX) throw new WireError('bad-varint', 'seq');
      const data = r.lenBytes(APP_MESSAGE_MAX_BYTES, 'msg data');
      return msgFrame(ctx, ctx.stream, ctx.seq + 1, data.length, 0, data);
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

function msgFrame(ctx: PacketContext, stream: number, seq: number, total: number, offset: number, data: Uint8Array): Frame {
  ctx.stream = stream;
  ctx.seq = seq;
  return { type: 'msg', stream, seq, total, offset, data };
}

/** Decodes a packet's frames; any malformed frame fails the whole packet. Never throws. */
export function decodeFrames(bytes: Uint8Array): Decoded<Frame[]> {
  return decodeWith(bytes, (r) => {
    const frames: Frame[] = [];
    const ctx = newPacketContext();
    while (r.remaining > 0) {
      const f = readFrame(r, ctx);
      // Runs of padding collapse to one frame: padding carries nothing.
      if (f.type === 'padding' && frames[frames.length - 1]?.type === 'padding') continue;
      frames.push(f);
    }
    return frames;
  });
}

export function encodeFrames(frames: Frame[], sizeHint = 256): Uint8Array {
  const w = new Writer(sizeHint);
  const ctx = newPacketContext();
  for (const f of frames) encodeFrame(w, f, ctx);
  return w.finish();
}
