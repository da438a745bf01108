// `backstop verify warm [-j N] [-f] FILE|-`, `backstop verify sync [-f]`, `backstop verify show
// ADDRESS`, `backstop verify import [-f] lmdb:PATH|FILE|-`: the administrator's side of the verify
// cache. import brings a Postfix verify cache in (its lmdb: file, or `postmap -s` output of a
// btree: one), keeping each entry's status and probed/updated times. warm probes a list of addresses (one
// per line; `#` comments) so the backup knows every mailbox before the primary ever fails; sync
// does the same from backstop_verify_sync_map; show prints one entry in words. Probes use the
// server's own routing (address_verify_relayhost / address_verify_transport_maps, MX, loop rule)
// and cache (address_verify_map). Trusts the config module for parameter values.

import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { loadConfig, formatDiagnostic, type Config } from '../config/index.js';
import { maillog } from '../log/index.js';
import { probe } from '../smtp/index.js';
import { deliveryOptions, resolverFromConfig, connectionCache } from '../master/wiring.js';
import {
  createVerifier, openVerifyStore, verifyParamsFrom, warmAddresses, syncOnce, formatTotals,
  STAT_OK, STAT_DEFER, STAT_BOUNCE, cacheKey, parseRecord, CLEANUP_KEY, type VerifyService, type WarmTotals, type VerifyStore,
} from '../verify/index.js';
import { openCompiledDict, resolveTablePath } from '../tables/index.js';
import type { CommandIo } from './io.js';
import { invoke, type CommandSpec, type ParsedArgs } from './args.js';
import { startProgress } from './progress.js';

export interface VerifyIo extends CommandIo {
  /** Standard input for `warm -` (default process.stdin). */
  stdin?: Readable;
  /** True when stderr is a terminal: show a progress line (default process.stderr.isTTY). */
  tty?: boolean;
  /** Clock in ms (tests). */
  now?: () => number;
}

const USAGE = 'usage: backstop verify warm [-j concurrency] [-f] FILE|- | verify sync [-f] | verify show ADDRESS';
const IMPORT_USAGE = 'usage: backstop verify import [-f] lmdb:PATH|FILE|-';

interface Context {
  config: Config;
  verifier: VerifyService;
  mapName: string;
  close(): Promise<void>;
}

async function open(io: VerifyIo): Promise<Context> {
  const loaded = loadConfig(io.configDir);
  const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(errors.map(formatDiagnostic).join('\n'));
  const config = loaded.config;
  // Log lines (the probes' delivery lines) go to maillog_file, or nowhere on a terminal command.
  maillog.open(config.str('maillog_file') || undefined, { quiet: true });
  const dns = resolverFromConfig(config);
  const cache = connectionCache(config);
  const mapName = config.str('address_verify_map');
  const store = await openVerifyStore(mapName, { baseDir: config.dir });
  const routing = deliveryOptions(config, { dns, cache }, true);
  const verifier = createVerifier({
    store,
    prober: (address, sender) => probe(address, sender, routing),
    params: verifyParamsFrom(config),
    now: io.now,
    log: maillog.logger('verify'),
    cleanupTimer: false,
  });
  return {
    config,
    verifier,
    mapName: mapName || 'internal:verify',
    async close() {
      await verifier.close();
      await store.close();
      await cache.closeAll();
      dns.close();
      maillog.close();
    },
  };
}

async function* lines(input: Readable): AsyncIterable<string> {
  const rl = createInterface({ input, crlfDelay: Infinity });
  for await (const line of rl) {
    const t = line.replace(/#.*/, '').trim();
    if (t) yield t;
  }
}

/** How many addresses a list file holds (for the progress bar's total; 0 when unknown). */
async function countAddresses(file: string | undefined): Promise<number> {
  if (!file || file === '-') return 0;
  let n = 0;
  try {
    for await (const _ of lines(createReadStream(file))) n++;
  } catch {
    return 0;
  }
  return n;
}

/** A progress bar on a terminal (cli.progress.ts); quiet otherwise. */
async function progress(io: VerifyIo, what: string, file?: string) {
  const tty = io.tty ?? Boolean(process.stderr.isTTY);
  const total = tty ? await countAddresses(file) : 0;
  const counts = '{deliverable} deliverable, {undeliverable} undeliverable, {deferred} deferred, {cached} cached';
  const bar = startProgress({
    write: io.stderr,
    tty,
    format: total ? `${what} [{bar}] {value}/{total} ({percentage}%, eta {eta_formatted}): ${counts}` : `${what}: {value} done: ${counts}`,
    total,
    payload: { deliverable: 0, undeliverable: 0, deferred: 0, cached: 0 },
  });
  return {
    onResult(_r: unknown, t: WarmTotals) {
      bar.tick(1, { deliverable: t.deliverable, undeliverable: t.undeliverable, deferred: t.deferred, cached: t.cached });
    },
    end() {
      bar.stop();
    },
  };
}

function when(sec: number, now: number): string {
  const d = new Date(sec * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return `${d} (${ago(sec - now)})`;
}

/** "in 4 days", "3 hours ago", "now". */
export function ago(deltaSec: number): string {
  const a = Math.abs(deltaSec);
  if (a < 1) return 'now';
  const units: Array<[number, string]> = [[86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']];
  const [size, name] = units.find(([s]) => a >= s)!;
  const n = Math.floor(a / size);
  const text = `${n} ${name}${n === 1 ? '' : 's'}`;
  return deltaSec > 0 ? `in ${text}` : `${text} ago`;
}

const STATUS_WORDS: Record<number, string> = {
  [STAT_OK]: 'deliverable',
  [STAT_DEFER]: 'deferred (the last probe failed temporarily)',
  [STAT_BOUNCE]: 'undeliverable',
  3: 'unknown, probe in progress',
};

async function show(ctx: Context, address: string, io: VerifyIo): Promise<number> {
  const info = await ctx.verifier.inspect(address);
  if (info.raw === undefined) {
    io.stderr(`verify: ${address}: not in cache ${ctx.mapName}\n`);
    return 1;
  }
  const r = info.record;
  const out: string[] = [`address: ${address}`];
  if (!r) {
    out.push(`status: bad entry (treated as absent): ${info.raw}`);
  } else {
    out.push(`status: ${STATUS_WORDS[r.status]}${info.expired ? ' — expired, the next query probes again' : ''}`);
    if (r.updated) out.push(`text: ${r.text}`, `verified: ${when(r.updated, info.now)}`);
    if (info.refreshAt !== undefined) out.push(`next refresh: ${info.refreshAt < info.now ? 'due (on the next query)' : when(info.refreshAt, info.now)}`);
    if (info.expiresAt !== undefined) out.push(`expires: ${when(info.expiresAt, info.now)}`);
    out.push(`probe: ${info.probeOutstanding ? `outstanding, sent ${when(r.probed, info.now)}` : 'none outstanding'}`);
  }
  out.push(`entry: ${info.key}\t${info.raw}`);
  io.stdout(out.join('\n') + '\n');
  return 0;
}

export interface ImportTotals {
  imported: number;
  /** The cache already had a newer (or, without -f, any more recent) entry. */
  kept: number;
  /** Not a verify entry (bad value); warned about. */
  skipped: number;
}

/**
 * Copy Postfix verify(8) entries into the store. The value is kept as it is — it is the same
 * `status:probed:updated:text` record in both programs — so the status and both times survive, and
 * the refresh/expiry rules see the entry's real age. An entry already in the cache that was
 * updated later stays (unless force): the newer knowledge wins. Postfix's cleanup bookkeeping key
 * is not copied (Backstop's cleanup keeps its own schedule).
 */
export async function importEntries(store: VerifyStore, entries: AsyncIterable<[string, string]> | Iterable<[string, string]>, force: boolean, warn: (m: string) => void): Promise<ImportTotals> {
  const t: ImportTotals = { imported: 0, kept: 0, skipped: 0 };
  for await (const [rawKey, value] of entries) {
    if (rawKey.toUpperCase() === CLEANUP_KEY) continue;
    const rec = parseRecord(value);
    if (!rec || rawKey === '') {
      warn(`skipping "${rawKey}": not a verify cache entry: "${value.slice(0, 60)}"`);
      t.skipped++;
      continue;
    }
    const key = cacheKey(rawKey);
    if (!force) {
      const have = await store.get(key);
      const old = have === undefined ? undefined : parseRecord(have);
      if (old && old.updated >= rec.updated) {
        t.kept++;
        continue;
      }
    }
    await store.put(key, value);
    t.imported++;
  }
  return t;
}

/** `postmap -s` output: `key<TAB>value` (or white space), one entry per line. */
async function* dumpLines(input: Readable): AsyncIterable<[string, string]> {
  const rl = createInterface({ input, crlfDelay: Infinity });
  for await (const line of rl) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const m = /^(\S+)[ \t]+(.*)$/.exec(line);
    yield m ? [m[1], m[2]] : [line.trim(), ''];
  }
}

async function importCache(source: string, force: boolean, io: VerifyIo): Promise<number> {
  const fatal = (msg: string): number => {
    io.stderr(`verify: fatal: ${msg}\n`);
    return 1;
  };
  const loaded = loadConfig(io.configDir);
  const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) return fatal(errors.map(formatDiagnostic).join('\n'));
  const config = loaded.config;
  const mapName = config.str('address_verify_map');
  if (!mapName) return fatal('address_verify_map is empty (a memory-only cache): name the cache to import into, e.g. btree:$data_directory/verify');
  let entries: AsyncIterable<[string, string]> | Iterable<[string, string]>;
  let closeSource = (): void => {};
  if (source.startsWith('lmdb:')) {
    // Postfix's verify cache file itself (PATH.lmdb), checked before LMDB maps it.
    const path = resolveTablePath(source.slice(5), { baseDir: process.cwd() });
    try {
      const dict = openCompiledDict('lmdb', path);
      closeSource = () => dict.close();
      entries = dict.entries();
    } catch (err) {
      return fatal((err as Error).message);
    }
  } else {
    let input: Readable;
    if (source === '-') input = io.stdin ?? process.stdin;
    else {
      input = createReadStream(source);
      const opened = await new Promise<Error | undefined>((resolve) => {
        input.once('open', () => resolve(undefined));
        input.once('error', resolve);
      });
      if (opened) return fatal(`open ${source}: ${(opened as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : opened.message}`);
    }
    entries = dumpLines(input);
  }
  let store: VerifyStore;
  try {
    store = await openVerifyStore(mapName, { baseDir: config.dir });
  } catch (err) {
    closeSource();
    return fatal((err as Error).message);
  }
  try {
    const t = await importEntries(store, entries, force, (m) => io.stderr(`verify: warning: ${m}\n`));
    io.stdout(`verify import into ${mapName}: ${t.imported} imported, ${t.kept} kept (the cache's entry is as new or newer), ${t.skipped} skipped\n`);
    return 0;
  } catch (err) {
    return fatal((err as Error).message);
  } finally {
    closeSource();
    await store.close();
  }
}

export const verifySpec: CommandSpec = {
  name: 'verify',
  summary: 'probe addresses into the verify cache (warm FILE|-, sync), show an entry (show ADDRESS), import a Postfix verify cache (import lmdb:PATH|FILE|-)',
  synopsis: '[-c DIR] warm [-j N] [-f] FILE|- | sync [-f] | show ADDRESS | import [-f] lmdb:PATH|FILE|-',
  options: {
    jobs: { type: 'string', short: 'j', value: 'N', help: 'warm: probes in parallel (default: the verify service\'s limit)' },
    force: { type: 'boolean', short: 'f', help: 'warm, sync: probe even addresses the cache still knows; import: replace newer entries too' },
  },
  usageError: (message, err) => (err(`verify: fatal: ${message}; ${USAGE}\n`), 2),
};

export async function runVerify(parsed: ParsedArgs, io: VerifyIo): Promise<number> {
  const fatal = (msg: string): number => {
    io.stderr(`verify: fatal: ${msg}\n`);
    return 1;
  };
  const [sub, ...args] = parsed.positionals;
  const { jobs, force: forced } = parsed.values as { jobs?: string; force?: boolean };
  if (jobs !== undefined && sub !== 'warm') return fatal(`option -j is for verify warm; ${USAGE}`);
  if (forced && sub === 'show') return fatal(`option -f is for verify warm, sync and import; ${USAGE}`);
  if (jobs !== undefined && !/^[1-9][0-9]*$/.test(jobs)) return fatal(`option -j needs a positive number, got "${jobs}"; ${USAGE}`);
  const concurrency = jobs === undefined ? undefined : Number(jobs);
  const force = forced === true;
  if (sub === 'warm' && args.length !== 1) return fatal(`verify warm needs one FILE (or - for standard input); ${USAGE}`);
  if (sub === 'show' && args.length !== 1) return fatal(`verify show needs one ADDRESS; ${USAGE}`);
  if (sub === 'sync' && args.length !== 0) return fatal(`verify sync takes no arguments (it reads backstop_verify_sync_map); ${USAGE}`);
  if (sub === 'import') {
    if (args.length !== 1) return fatal(`verify import needs one source: lmdb:PATH (Postfix's lmdb: cache), or a FILE or - with \`postmap -s\` output of a btree: cache; ${IMPORT_USAGE}`);
    return importCache(args[0], force, io);
  }
  if (sub !== 'warm' && sub !== 'show' && sub !== 'sync') return fatal(sub ? `unknown subcommand "${sub}"; ${USAGE}` : USAGE);

  let input: Readable | undefined;
  if (sub === 'warm') {
    if (args[0] === '-') input = io.stdin ?? process.stdin;
    else {
      input = createReadStream(args[0]);
      const opened = await new Promise<Error | undefined>((resolve) => {
        input!.once('open', () => resolve(undefined));
        input!.once('error', resolve);
      });
      if (opened) return fatal(`open ${args[0]}: ${(opened as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : opened.message}`);
    }
  }

  let ctx: Context;
  try {
    ctx = await open(io);
  } catch (err) {
    input?.destroy();
    return fatal((err as Error).message);
  }
  try {
    switch (sub) {
      case 'show':
        return await show(ctx, args[0], io);
      case 'warm': {
        const p = await progress(io, 'warm', args[0]);
        const totals = await warmAddresses(ctx.verifier, lines(input!), { concurrency, force, onResult: p.onResult });
        p.end();
        io.stdout(`verify warm: ${formatTotals(totals)}\n`);
        return totals.error ? 1 : 0;
      }
      case 'sync': {
        const ref = ctx.config.str('backstop_verify_sync_map');
        if (!ref) return fatal('backstop_verify_sync_map is empty: name the table of addresses to verify, e.g. hash:/etc/backstop/relay_recipients');
        const totals = await syncOnce(ctx.verifier, { ref, baseDir: ctx.config.dir, log: maillog.logger('verify'), force });
        io.stdout(`verify sync from ${ref}: ${formatTotals(totals)}\n`);
        return totals.error ? 1 : 0;
      }
    }
  } catch (err) {
    return fatal((err as Error).message);
  } finally {
    await ctx.close();
  }
  return 0;
}

/** `verify ARGS...` as typed on the command line. */
export function verifyCommand(argv: string[], io: VerifyIo): Promise<number> {
  return invoke(verifySpec, argv, io, (args) => runVerify(args, io));
}
