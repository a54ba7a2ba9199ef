// The public client library: `import { ObrolClient } from 'obrol'`.
export { ObrolClient, ObrolClientError, LOBBY } from './client.js';
export type { ChatEvent, ClientOptions, ClientFailure, LeaveWhy, SentMessage } from './client.js';
export { ErrorCode } from '../wire/message.js';
