// Every limit, default and timeout in obrol lives here, each with the reason for its value.
// Other modules import these names; a number that bounds something must not be written anywhere else.

/** Default UDP port, the original chat's port. */
export const DEFAULT_PORT = 6789;

// ---- Datagrams -------------------------------------------------------------------------------

/** Default largest UDP payload we send: fits the IPv6 minimum MTU (1280) minus headers, as QUIC does. */
export const DEFAULT_MTU = 1200;
/** Smallest --mtu accepted: below this a 16 KiB message needs too many fragments and handshakes no longer fit. */
export const MIN_MTU = 1200;
/** Largest --mtu accepted: the largest UDP payload over IPv4 loopback/jumbo paths. */
export const MAX_MTU = 65_507;
/** Receive buffer size for a datagram; anything larger is truncated by the kernel and then fails decoding. */
export const MAX_DATAGRAM = 65_535;
/** A client's first packet is padded to this size so the server's reply can never amplify (issue 7). */
export const HELLO_PADDED_SIZE = 1200;

// ---- Names and text -------------------------------------------------------------------------

/** Longest name, in Unicode code points after NFC: long enough for real names, short enough for one status bar. */
export const NAME_MAX_CHARS = 32;
/** Longest room name including the leading '#'. */
export const ROOM_MAX_CHARS = 64;
/** Largest chat message text in UTF-8 bytes: 16 KiB, enough for a pasted log, bounded for reassembly buffers. */
export const MESSAGE_MAX_BYTES = 16 * 1024;
/** Largest reason / topic / away text in UTF-8 bytes. */
export const SHORT_TEXT_MAX_BYTES = 512;
/** Largest encoded application message (text plus fields), bounds fragment reassembly. */
export const APP_MESSAGE_MAX_BYTES = MESSAGE_MAX_BYTES + 1024;
/** Most items one /who or /rooms answer lists (biggest first for rooms); the answer says how many it left out. */
export const LIST_MAX_ITEMS = 1000;

// ---- Session: reliability -------------------------------------------------------------------

/** Longest the server holds back an ack (RFC 9000's default max_ack_delay): a client's own messages are
 * confirmed, and their losses repaired, quickly. */
export const MAX_ACK_DELAY_MS = 25;
/** Longest a client holds back an ack (the server's probe timeout waits this long for it). In a quiet
 * room a client gets a packet every 100 ms or so, and at 25 ms it acks every one: at 1,000 members that
 * is an ack per delivery, the largest cost of a fan-out. At 150 ms one ack covers two such packets
 * (npm run bench:session: 0.50 acks per message at 10/s, against 1.00 at 25 or 100 ms). A gap is acked at
 * once, so only a lost last packet waits longer: p99 at 5% loss 173 ms, against 104 ms at 25 ms. */
export const CLIENT_MAX_ACK_DELAY_MS = 150;
/** Delayed acks fall due on a grid of this many ms (never later than the side's max ack delay): thousands of idle
 * sessions' keepalives are then acknowledged in batches, one timer and one sendmmsg for many. */
export const ACK_TIMER_SLOT_MS = 10;
/** Ack at once after this many ack-eliciting packets (QUIC's default is 2; higher cuts acks in busy rooms). */
export const ACK_EVERY_PACKETS = 4;
/** Packet-threshold loss detection (RFC 9002 kPacketThreshold). */
export const LOSS_PACKET_THRESHOLD = 3;
/** Time-threshold loss detection multiplier (RFC 9002 kTimeThreshold = 9/8). */
export const LOSS_TIME_THRESHOLD = 9 / 8;
/** Most packets of reordering tolerated before a loss is declared, after spurious losses widened it. */
export const MAX_REORDER_PACKETS = 10;
/** Most the time threshold grows to after spurious losses (in RTTs). */
export const MAX_REORDER_TIME_FACTOR = 2;
/** RTT assumed before the first sample (RFC 9002 kInitialRtt is 333 ms; a chat over the internet is rarely worse). */
export const INITIAL_RTT_MS = 333;
/** Timer granularity (RFC 9002 kGranularity). */
export const TIMER_GRANULARITY_MS = 1;
/** Upper bound on one probe timeout after backoff: over a dozen probes fit in an idle timeout, so a lossy but live path stays alive, and a returning peer is noticed quickly. */
export const MAX_PTO_MS = 3_000;
/** Most ack ranges carried in one ACK frame; older ranges are dropped (RFC 9000 recommends limiting). */
export const MAX_ACK_RANGES = 32;
/** Initial congestion window in bytes (RFC 9002: 10 * max datagram size). */
export const INITIAL_CWND_PACKETS = 10;
/** Minimum congestion window in packets (RFC 9002 kMinimumWindow = 2 packets). */
export const MIN_CWND_PACKETS = 2;
/** Bytes of unacknowledged + queued outgoing data per session before the peer counts as too slow. */
export const SEND_BUFFER_MAX_BYTES = 1024 * 1024;
/** Bytes of out-of-order and partially reassembled data a session buffers from its peer. */
export const RECV_BUFFER_MAX_BYTES = 256 * 1024;
/** Most concurrent streams per session (rooms plus private conversations plus control). */
export const MAX_STREAMS = 256;
/** Packet numbers are 32-bit and never wrap: a session closes before this (years at chat rates). */
export const MAX_PACKET_NUMBER = 0xffff_ffff;

// ---- Batched sends (src/net/udp-batch.ts) ----------------------------------------------------------

/** Datagrams queued before a batch is flushed early: a 1,000-member fan-out and its acks fit in one. */
export const UDP_BATCH_MAX_DATAGRAMS = 4096;
/** The server hands its datagrams to the kernel in runs of at most this many while it is still sealing a
 * turn's output: a big room's first members get their copy while the last ones' are sealed (1,000
 * members: p50 8.5 -> 7.5 ms, CPU per delivery unchanged; 64 measured the same as 256). */
export const SERVER_SEND_RUN_DATAGRAMS = 256;
/** Bytes queued before a batch is flushed early: bounds the reused arena, the socket's buffer is 4 MiB too. */
export const UDP_BATCH_MAX_BYTES = 4 << 20;
/** Packed destination addresses cached between flushes; past it the cache starts again (bounds memory
 * under a spread of spoofed sources). */
export const UDP_BATCH_MAX_ADDRESSES = 16_384;

// ---- Batched receives (src/net/udp-recv.ts) --------------------------------------------------------

/** Datagrams per recvmmsg call (the addon makes at most 4 calls per wake-up, then lets timers run). */
export const RECV_BATCH_SLOTS = 64;
/** Bytes per receive slot: the largest UDP payload fits, so nothing is truncated. Only the pages a
 * datagram touches become resident. */
export const RECV_SLOT_BYTES = 65_536;
/** Source addresses kept as objects between datagrams; past it the cache starts again (spoofed sources). */
export const RECV_ADDRESS_CACHE_MAX = 65_536;

// ---- Session: liveness -----------------------------------------------------------------------

/** Send a keepalive after this much idleness: well under the usual 30 s NAT binding timeout. */
export const KEEPALIVE_MS = 15_000;
/** End a session after this long without hearing from the peer: three keepalives missed. */
export const IDLE_TIMEOUT_MS = 45_000;
/** A keepalive is a PING, which the peer answers, only when nothing it answers has been sent for about
 * this long; the keepalives in between are NAT_KEEPALIVE datagrams, which refresh the path's NAT
 * bindings (what KEEPALIVE_MS is for) and ask nothing of the server. Each side still hears the other
 * well within the idle timeout, and a server answers half as many keepalives (at 100,000 idle sessions
 * most of its CPU). Twice the keepalive, and a keepalive short of the idle timeout at most. */
export function keepalivePingMs(keepaliveMs: number, idleTimeoutMs: number): number {
  return Math.max(keepaliveMs, Math.min(2 * keepaliveMs, idleTimeoutMs - keepaliveMs));
}
export const KEEPALIVE_PING_MS = keepalivePingMs(KEEPALIVE_MS, IDLE_TIMEOUT_MS);
/** The shortest idle timeout that keeps obrol's idle clients (`obrol serve --idle-timeout` warns below
 * it): an idle client PINGs every KEEPALIVE_PING_MS, and a lost PING is probed again within seconds. */
export const SERVER_IDLE_TIMEOUT_MIN_MS = KEEPALIVE_PING_MS + 5_000;
/** The server checks its sessions for the idle timeout this often, in one pass over an array of when each
 * last heard from its peer, instead of filing every session's idle deadline in the timer heap, where
 * each keepalive moved it and left a stale entry to pop (a few cache misses each at 100,000 sessions).
 * A session then times out up to this much later than IDLE_TIMEOUT_MS. */
export const IDLE_SWEEP_MS = 1_000;
/** Client gives up a connection attempt after this long and reports the server unreachable. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** Client's reconnect backoff: first delay, cap. */
export const RECONNECT_MIN_MS = 250;
export const RECONNECT_MAX_MS = 10_000;
/** The client reports the server unresponsive after this long without an answer to pending messages. */
export const STALL_AFTER_MS = 3_000;
/** How long `/quit` waits for the server to confirm the goodbye before closing anyway. */
export const QUIT_WAIT_MS = 2_000;
/** Line mode: at end of input, how long to wait for the server to acknowledge everything sent. */
export const DRAIN_TIMEOUT_MS = 15_000;
/** How long a closing session keeps answering retransmitted CLOSE, so the peer learns of it. */
export const CLOSING_LINGER_MS = 1_000;

// ---- Security ---------------------------------------------------------------------------------

/** A cookie is valid in the time window it was minted in and the next one. */
export const COOKIE_WINDOW_MS = 30_000;
/** The server replaces its cookie secret this often (old secret accepted for one more window). */
export const COOKIE_SECRET_ROTATE_MS = 120_000;
/** Rotate traffic keys after this many packets in one direction. */
export const REKEY_AFTER_PACKETS = 1 << 20;
/** Rotate traffic keys after this long. */
export const REKEY_AFTER_MS = 10 * 60_000;
/** Replay window in packets (WireGuard uses 2048 - 64; we keep the same order of magnitude). */
export const REPLAY_WINDOW_PACKETS = 2048;
/** Handshakes (cookie-validated hellos) accepted per source IP per second. */
export const HANDSHAKES_PER_IP_PER_SEC = 20;
/** Source IPs whose handshake rate is tracked at once; bounds that table under a handshake storm. */
export const HANDSHAKE_BUCKETS_MAX = 65_536;
/** Live sessions per source IP. */
export const SESSIONS_PER_IP = 64;
/** Total sessions per server: bounds memory (see docs/PROTOCOL.md for the per-session bound). */
export const MAX_SESSIONS = 200_000;
/** Flood control per session: bucket size (commands) and refill rate (commands per second). Every
 * command counts, not only messages: a /who or a history page makes the server send far more than it got. */
export const FLOOD_BURST = 20;
export const FLOOD_RATE_PER_SEC = 10;

// ---- Impairment proxy -------------------------------------------------------------------------

/** The proxy forgets a client address after this long without traffic. */
export const PROXY_IDLE_MS = 60_000;
/** Client addresses the proxy maps at once (each holds an upstream socket); the least recently active goes first. */
export const PROXY_MAX_MAPPINGS = 1024;

// ---- Legacy (original protocol) ---------------------------------------------------------------

/** Original clients read with a 1024-byte buffer, so no datagram to them may be larger. */
export const LEGACY_DATAGRAM_MAX = 1024;
/** A silent legacy client is forgotten after this long (it has no way to say goodbye). */
export const LEGACY_IDLE_MS = 10 * 60_000;
/** Most legacy clients at once: each is unauthenticated and costs one plaintext datagram per broadcast. */
export const LEGACY_MAX_CLIENTS = 1024;
/** Legacy clients registered from one IP: caps the lobby traffic that spoofed registrations can aim at one host. */
export const LEGACY_CLIENTS_PER_IP = 16;
/** Per-address guard on legacy datagrams, above FLOOD_BURST/FLOOD_RATE_PER_SEC so the chat's own "slow down" shows first. */
export const LEGACY_RATE_BURST = 40;
export const LEGACY_RATE_PER_SEC = 20;
/** Unregistered legacy addresses whose rate is tracked at once; the least recently heard is forgotten first. */
export const LEGACY_RATE_BUCKETS_MAX = 65_536;
/** Legacy client (`obrol join --legacy`): the original server answers a name at once, so wait this long at most. */
export const LEGACY_CONNECT_TIMEOUT_MS = 5_000;
/** Interactive `obrol join --legacy`: name attempts after "taken" before giving up (bounds the prompt loop). */
export const LEGACY_NAME_ATTEMPTS = 10;

// ---- History -------------------------------------------------------------------------------------

/** Messages replayed to a client that joins a room (`serve --history N`). */
export const HISTORY_ON_JOIN = 50;
/** Largest --history: the replay comes in pages (below), but a join should not turn into a download. */
export const HISTORY_ON_JOIN_MAX = 1000;
/** Messages in one catch-up page; the client asks for the next page, so a long absence never floods the send buffer. */
export const HISTORY_PAGE_MESSAGES = 200;
/** Bytes of message text in one catch-up page: with HISTORY_REQUESTS_IN_FLIGHT pages at once this stays
 * a quarter of SEND_BUFFER_MAX_BYTES, leaving room for live traffic. */
export const HISTORY_PAGE_BYTES = 128 * 1024;
/** History-producing requests (join, history) a client keeps outstanding at once; see HISTORY_PAGE_BYTES. */
export const HISTORY_REQUESTS_IN_FLIGHT = 2;
/** Default retention per room by count (`serve --retain-messages`); older messages are deleted. */
export const RETAIN_MESSAGES = 100_000;
/** Default retention by age in days (`serve --retain-days`); 0 keeps messages of any age. */
export const RETAIN_DAYS = 0;
/** How often the server applies retention while running (it also does at start). */
export const RETENTION_SWEEP_MS = 10 * 60_000;
/** Client keys whose largest stored ref the store keeps in memory (about 100 bytes each), so that a new
 * message needs no resend lookup; past it the cache starts again and keys are looked up once more. */
export const SENT_REF_CACHE_KEYS = 100_000;

// ---- Commands ------------------------------------------------------------------------------------

/** Rooms one session may be in: each is a stream (MAX_STREAMS) and a window in the client. */
export const ROOMS_PER_SESSION = 64;
/** Longest topic in UTF-8 bytes (IRC servers commonly allow about 300-400). */
export const TOPIC_MAX_BYTES = 390;
/** Longest away text in UTF-8 bytes. */
export const AWAY_MAX_BYTES = 200;
/** Rooms with more members than this get joins and leaves in batches (`presence`), not one message per
 * change: a join announced to N members one by one makes N joins cost O(N²) messages. */
export const PRESENCE_COALESCE_MEMBERS = 50;
/** How long a big room's joins and leaves wait to be announced together. */
export const PRESENCE_COALESCE_MS = 500;
/** Names in one `presence` message, for the same reason as MEMBERS_PER_REPLY. */
export const PRESENCE_NAMES_PER_MESSAGE = 100;
/** A batch larger than one message goes out one message per this many ms: original clients get a line per
 * name, and a thousand names to a thousand of them at once would queue a million datagrams. */
export const PRESENCE_FLUSH_GAP_MS = 20;
/** Members in one `members` reply: 100 names of at most 128 bytes keep a reply well under APP_MESSAGE_MAX_BYTES. */
export const MEMBERS_PER_REPLY = 100;
/** Rooms in one `rooms` reply: each carries a name (≤ 256 B) and a topic (≤ TOPIC_MAX_BYTES). */
export const ROOMS_PER_REPLY = 20;
