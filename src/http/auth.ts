// Who may act on the queue from the dashboard: whoever presents the token that the administrator
// put in backstop_http_action_token_file (the token itself, or `sha256:HEX` of it, so the file need
// not hold the secret). Without that file the dashboard is read-only and every action is refused.
// The token travels in an `Authorization: Bearer` header, which a browser never adds by itself
// (unlike cookies or Basic credentials), so another site's page cannot make the administrator's
// browser act (CSRF); an Origin other than our own is refused as well, and no CORS header is ever
// sent. Compared as SHA-256 digests with timingSafeEqual: equal length, constant time.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface ActionAuth {
  /** undefined: actions are off (no file configured). */
  digest?: Buffer;
  /** Why actions are off although a file is configured (unreadable, empty). */
  problem?: string;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export function loadActionAuth(file: string): ActionAuth {
  if (!file) return {};
  let text: string;
  try {
    text = readFileSync(file, 'utf8').split(/\r?\n/)[0].trim();
  } catch (err) {
    return { problem: `backstop_http_action_token_file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}: actions are disabled` };
  }
  if (!text) return { problem: `backstop_http_action_token_file ${file} is empty: actions are disabled` };
  const hashed = /^sha256:([0-9a-f]{64})$/i.exec(text);
  return { digest: hashed ? Buffer.from(hashed[1], 'hex') : sha256(text) };
}

/** The request's verdict: undefined when it may act, else the status and reason. */
export function refuseAction(auth: ActionAuth, headers: { authorization?: string; origin?: string; host?: string }): { status: number; error: string } | undefined {
  if (!auth.digest) return { status: 403, error: auth.problem ?? 'actions are disabled: no backstop_http_action_token_file is configured (the dashboard is read-only)' };
  if (headers.origin && headers.origin !== 'null') {
    let host: string | undefined;
    try {
      host = new URL(headers.origin).host;
    } catch {
      host = undefined;
    }
    if (host !== headers.host) return { status: 403, error: 'cross-origin request refused' };
  }
  const m = /^Bearer\s+(\S+)$/i.exec(headers.authorization ?? '');
  if (!m || !timingSafeEqual(sha256(m[1]), auth.digest)) return { status: 403, error: 'a valid action token is required' };
  return undefined;
}
