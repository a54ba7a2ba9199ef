// Constants of obrol's use of Noise: see docs/PROTOCOL.md "Handshake and encryption".
import { utf8Bytes } from '../wire/buf.js';

/** Binds every handshake to this protocol and version: a peer speaking anything else fails to authenticate. */
export const NOISE_PROLOGUE = utf8Bytes('obrol/1');
