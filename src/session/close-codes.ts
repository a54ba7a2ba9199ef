// CLOSE frame codes (docs/PROTOCOL.md "CLOSE codes").
export const CloseCode = {
  Normal: 0,
  IdleTimeout: 1,
  ProtocolViolation: 2,
  TooSlow: 3,
  NameRejected: 4,
  ShuttingDown: 5,
  Replaced: 6,
  RateLimited: 7,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
