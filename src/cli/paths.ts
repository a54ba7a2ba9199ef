// Where the server keeps its data by default (XDG), overridable for tests and packaging.
import { homedir } from 'node:os';
import { join } from 'node:path';

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.OBROL_DATA_DIR) return env.OBROL_DATA_DIR;
  if (env.XDG_DATA_HOME) return join(env.XDG_DATA_HOME, 'obrol');
  return join(homedir(), '.local', 'share', 'obrol');
}
