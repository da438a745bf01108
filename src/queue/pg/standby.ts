// Does a COMMIT on this database wait for a synchronous standby? (docs/cluster.md, "Making 250
// wait for a standby"). Reads synchronous_commit, synchronous_standby_names and
// pg_stat_replication; answers with the problem as one line, or null when commits wait for at
// least one connected synchronous standby. For `backstop check` once the store can be selected.
// pg_stat_replication's sync_state is visible to superusers and members of pg_monitor only.
// Trusts what the server reports.

import type { ClientBase } from 'pg';

export async function synchronousStandbyProblem(db: ClientBase): Promise<string | null> {
  const settings = await db.query<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit', 'synchronous_standby_names')`,
  );
  const get = (n: string) => settings.rows.find((r) => r.name === n)?.setting ?? '';
  if (get('synchronous_standby_names').trim() === '') {
    return 'the queue database has no synchronous standby (synchronous_standby_names is empty): a 250 waits only for the primary\'s disk';
  }
  if (get('synchronous_commit') === 'off' || get('synchronous_commit') === 'local') {
    return `the queue database's synchronous_commit is ${get('synchronous_commit')}: a 250 does not wait for the standby`;
  }
  const r = await db.query<{ application_name: string; sync_state: string | null }>('SELECT application_name, sync_state FROM pg_stat_replication');
  if (r.rows.some((x) => x.sync_state === 'sync' || x.sync_state === 'quorum')) return null;
  if (r.rows.length > 0 && r.rows.every((x) => x.sync_state === null)) {
    return 'cannot see the queue database\'s replication state: grant the role pg_monitor';
  }
  return `the queue database reports no synchronous standby connected (synchronous_standby_names = '${get('synchronous_standby_names')}'): commits wait, and smtpd answers 451, until one connects`;
}
