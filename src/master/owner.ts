// Who the workers run as (Postfix's mail_owner). Only the master keeps root: when it was started
// as root, the workers it starts run as mail_owner, and the queue and data directories belong to
// that user (mode 700), as Postfix's set-permissions makes them. Started as anybody else, every
// process runs as that user, which is said once in the log. The user is looked up with `id(1)`
// because Node has no getpwnam(), and `id` sees every account source the system is set up for
// (/etc/passwd, LDAP, ...), where reading /etc/passwd would not.

import { execFileSync } from 'node:child_process';
import { chownSync, lstatSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { userInfo } from 'node:os';

export interface Owner {
  name: string;
  uid: number;
  gid: number;
}

/** The workers' user: `{ owner }` when they must change to it, `{ note }` when they stay as we are, `{ error }`. */
export function workerOwner(mailOwner: string): { owner?: Owner; note?: string; error?: string } {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { note: `not started as root: every process runs as user ${userInfo().username} (mail_owner = ${mailOwner} applies only when started as root)` };
  }
  const id = (flag: string): number | undefined => {
    try {
      return Number(execFileSync('id', [flag, mailOwner], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    } catch {
      return undefined;
    }
  };
  const uid = id('-u');
  const gid = id('-g');
  if (uid === undefined || gid === undefined || !Number.isInteger(uid) || !Number.isInteger(gid)) {
    return { error: `mail_owner: user "${mailOwner}" does not exist: create it (e.g. useradd --system --no-create-home --shell /usr/sbin/nologin ${mailOwner}) or set mail_owner to an unprivileged user that exists` };
  }
  if (uid === 0) return { error: `mail_owner: "${mailOwner}" has user id 0: the workers must not run as root; set mail_owner to an unprivileged user` };
  return { owner: { name: mailOwner, uid, gid } };
}

/** Give `dir` and everything below it to `owner` (entries it already owns are left alone). */
export function chownTree(dir: string, owner: Owner): void {
  const visit = (path: string): void => {
    const st = lstatSync(path);
    if (st.uid !== owner.uid || st.gid !== owner.gid) chownSync(path, owner.uid, owner.gid);
    if (st.isDirectory()) for (const name of readdirSync(path)) visit(join(path, name));
  };
  visit(dir);
}

/**
 * Why `owner` could not reach `path` (a folder above it that the user may not enter), or
 * undefined. The workers write the queue as mail_owner, so every folder above queue_directory
 * must let it pass, as /var/spool does for Postfix.
 */
export function unreachable(path: string, owner: Owner): string | undefined {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const st = statSync(dir);
    const bit = st.uid === owner.uid ? 0o100 : st.gid === owner.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) {
      return `${dir} (mode ${(st.mode & 0o777).toString(8)}, owner uid ${st.uid}) does not let mail_owner ${owner.name} pass: make it searchable (chmod o+x ${dir}) or choose a folder mail_owner can reach`;
    }
    if (dirname(dir) === dir) return undefined;
  }
}
