// Loading one of the Node-API addons that `npm run build` puts in build/ (native/build.mjs): each is
// optional, so a missing, stale or failing one is a reason to fall back, never an error.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface AddonLoad<T> {
  addon: T | null;
  /** Why addon is null, or null. */
  error: string | null;
}

/** build/<name>.node, from anywhere under src/ or dist/ (both are two levels below the root). */
export function addonPath(name: string): string {
  return fileURLToPath(new URL(`../../build/${name}.node`, import.meta.url));
}

/** Loads build/<name>.node if it is there and `is` recognises it (this version's exports). */
export function loadAddon<T>(name: string, is: (x: unknown) => x is T): AddonLoad<T> {
  const path = addonPath(name);
  if (!existsSync(path)) return { addon: null, error: `${path} is not built (npm run build; build/${name}.status.json says why)` };
  try {
    const mod: unknown = createRequire(import.meta.url)(path);
    return is(mod) ? { addon: mod, error: null } : { addon: null, error: `${path} is not this version of the addon` };
  } catch (e) {
    return { addon: null, error: `${path} did not load: ${e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e)}` };
  }
}
