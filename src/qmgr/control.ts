// The handlers the running server registers on the control socket (src/control/):
// postqueue -f / -s go to the queue manager's flush; postsuper -d/-h/-H/-r are applied to the
// running Queue (whose events keep the queue manager's in-memory state in step). Shaped to the
// master's ControlHandlers interface; trusts the control server to have validated the request.

import { applyAdmin, type AdminResult, type AdminSelection, type Queue } from '../queue/index.js';
import type { Qmgr } from './qmgr.js';

export interface QmgrControlHandlers {
  flush(): Promise<void>;
  flushSite(site: string): Promise<'ok' | 'bad' | 'deny'>;
  delete(sel: AdminSelection): Promise<AdminResult>;
  hold(sel: AdminSelection): Promise<AdminResult>;
  release(sel: AdminSelection): Promise<AdminResult>;
  requeue(sel: AdminSelection): Promise<AdminResult>;
}

/** Postfix's flush service answers "bad" for a malformed site, "deny" for one not eligible. */
export function controlHandlers(qmgr: Qmgr, queue: Queue): QmgrControlHandlers {
  return {
    flush: () => qmgr.flushAll(),
    async flushSite(site: string) {
      const s = site.trim();
      if (!s || /[\s@]/.test(s) || s.length > 255) return 'bad';
      return (await qmgr.flushDomain(s)) ? 'ok' : 'deny';
    },
    delete: (sel) => applyAdmin(queue, 'delete', sel),
    hold: (sel) => applyAdmin(queue, 'hold', sel),
    release: (sel) => applyAdmin(queue, 'release', sel),
    requeue: (sel) => applyAdmin(queue, 'requeue', sel),
  };
}
