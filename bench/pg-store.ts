// The queue stores side by side (issue 14): scenario 1's acceptance load — smtp-source, 20
// sessions, 1 KB, the primary down so every message is queued — against Backstop with the file
// store, with the PostgreSQL store (backstop_queue_store = postgres:FILE) on a server without a
// standby, and with a synchronous standby (synchronous_standby_names, so every COMMIT, and so
// every 250, waits for the standby's disk). The PostgreSQL clusters are made as the tests make
// them (test/helpers/postgres.ts: initdb, pg_basebackup, loopback ports, removed at the end).
// Figures: messages per second (wall time of smtp-source, every message answered 250) and CPU
// seconds per 1,000 messages of Backstop's processes (not PostgreSQL's).
// Target (issue 14): PostgreSQL with a synchronous standby >= half the file store's rate.
// Needs root, the postfix, dnsmasq-base and postgresql packages.
// Run: npx tsx bench/pg-store.ts [--messages 2000] [--runs 3] [--sessions 20] [--sizes 1024]
//      (npm run bench -- --only pg-store)
import { startLab, parseArgs, stat, emitReport, type BenchRow, type Lab, type Server } from './harness/lab.js';
import { runSmtpSource, smtpSourceArgs } from './harness/postfix.js';
import { startPostgres, type TestPostgres } from '../test/helpers/postgres.js';
import { sleep } from '../test/helpers/net.js';

type Store = 'file' | 'postgres' | 'postgres+standby';
const STORES: Store[] = ['file', 'postgres', 'postgres+standby'];
const LABEL: Record<Store, string> = { file: 'file store', postgres: 'PostgreSQL, no standby', 'postgres+standby': 'PostgreSQL, synchronous standby' };

const args = parseArgs({ messages: 2000, runs: 3, sessions: [20], sizes: [1024] });
const sessions = args.sessions[0];
const size = args.sizes[0];
const t0 = Date.now();
const rate = new Map<Store, number[]>();
const cpu = new Map<Store, number[]>();
const errors = new Map<Store, string>();
const notes: string[] = [];

/** A primary (and for the third case its synchronous standby "sb1"), or why there is none. */
async function database(withStandby: boolean): Promise<{ primary: TestPostgres; standby?: TestPostgres }> {
  const primary = await startPostgres();
  if (!withStandby) return { primary };
  try {
    const standby = await primary.standby('sb1');
    await primary.makeSynchronous('sb1');
    return { primary, standby };
  } catch (e) {
    primary.remove();
    throw e;
  }
}

/** Messages the store holds now (after a run: every message must be there). */
async function queued(s: Server, db?: TestPostgres): Promise<number> {
  if (!db) return s.queue().total;
  const r = await db.query<{ n: string }>('SELECT count(*) AS n FROM backstop.messages');
  return Number(r[0].n);
}

async function empty(s: Server, db?: TestPostgres): Promise<void> {
  if (db) await db.query('DELETE FROM backstop.messages');
  else await s.deleteAll();
}

for (const store of STORES) {
  let dbs: { primary: TestPostgres; standby?: TestPostgres } | undefined;
  let lab: Lab | undefined;
  try {
    if (store !== 'file') dbs = await database(store === 'postgres+standby');
    lab = await startLab({
      servers: ['backstop'],
      ...(dbs
        ? {
            backstopParams: { backstop_queue_store: 'postgres:queue-pg.cf' },
            // One connection per concurrent session and then some (pool_size is per process).
            backstopFiles: { 'queue-pg.cf': dbs.primary.configText(`node_name = bench-a\npool_size = ${sessions + 10}\n`) },
          }
        : {}),
    });
    const s = lab.servers.find((x) => x.kind === 'backstop');
    if (!s) throw new Error(lab.backstopError ?? 'Backstop did not start');
    await lab.primaryDown();
    // Warm-up: processes forked, connections open, caches filled.
    await runSmtpSource({ host: '127.0.0.1', port: s.port, sessions, messages: Math.min(200, args.messages), size });
    await sleep(1000);
    await empty(s, dbs?.primary);
    for (let run = 0; run < args.runs; run++) {
      const c0 = s.cpuSeconds();
      const r = await runSmtpSource({ host: '127.0.0.1', port: s.port, sessions, messages: args.messages, size });
      const c1 = s.cpuSeconds();
      const have = await queued(s, dbs?.primary);
      if (have < args.messages) notes.push(`${LABEL[store]}, run ${run + 1}: ${have} of ${args.messages} messages in the queue after smtp-source ended`);
      const perSec = args.messages / (r.ms / 1000);
      rate.set(store, [...(rate.get(store) ?? []), perSec]);
      cpu.set(store, [...(cpu.get(store) ?? []), ((c1 - c0) / args.messages) * 1000]);
      console.error(`run ${run + 1}: ${LABEL[store]}: ${perSec.toFixed(0)} msg/s, ${(((c1 - c0) / args.messages) * 1000).toFixed(2)} CPU s/1000`);
      await empty(s, dbs?.primary);
    }
  } catch (e) {
    // The first line, or the server's own error line when it did not start.
    const msg = (e as Error).message;
    errors.set(store, (/^backstop: error: .*$/m.exec(msg)?.[0] ?? msg.split('\n')[0]).slice(0, 300));
    console.error(`${LABEL[store]}: ${(e as Error).message}`);
  } finally {
    await lab?.close().catch((e) => console.error(`lab: ${(e as Error).message}`));
    dbs?.standby?.remove();
    dbs?.primary.remove();
  }
}

const script = 'npx tsx bench/pg-store.ts';
const src = `smtp-source ${smtpSourceArgs({ host: '127.0.0.1', port: 2526, sessions, messages: args.messages, size }).join(' ')}`;
const cmd = `${script} --sessions ${sessions} --sizes ${size} --messages ${args.messages} --runs ${args.runs}   # load: ${src}`;
const rows: BenchRow[] = [];
const fileRate = stat(rate.get('file') ?? [])?.median;
for (const store of STORES) {
  const note = errors.get(store);
  rows.push({
    case: `${LABEL[store]}, ${sessions} sessions, ${Math.round(size / 1024)} KB`, metric: 'msgs/s accepted', better: 'higher',
    backstop: stat(rate.get(store) ?? []), postfix: null, backstopNote: note, postfixNote: 'Backstop only', command: cmd,
    target: store === 'postgres+standby' ? `>= half the file store's${fileRate ? ` (${(fileRate / 2).toFixed(0)}/s)` : ''}` : undefined,
  });
  rows.push({
    case: `${LABEL[store]}, ${sessions} sessions, ${Math.round(size / 1024)} KB`, metric: 'Backstop CPU s per 1,000 msgs', better: 'lower',
    backstop: stat(cpu.get(store) ?? []), postfix: null, backstopNote: note, postfixNote: 'Backstop only', command: cmd,
  });
}
const sb = stat(rate.get('postgres+standby') ?? [])?.median;
if (fileRate && sb) notes.push(`PostgreSQL with a synchronous standby / file store: ${(sb / fileRate).toFixed(2)} (target >= 0.5).`);
notes.push(`${args.messages} messages per run, ${args.runs} runs per store; primary (127.0.0.2:25) down: every message is queued after its 250.`);
notes.push('PostgreSQL runs on the same machine (and its standby too): its CPU is not in the Backstop CPU figure, and it competes with Backstop for the cores.');
emitReport({ bench: 'pg-store', title: 'Queue stores: file, PostgreSQL, PostgreSQL with a synchronous standby (acceptance, primary down)', rows, notes, seconds: (Date.now() - t0) / 1000 });
