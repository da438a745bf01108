// `backstop status [--json]`: is the mail system running, and how is it doing? The master's pid
// file says whether it runs (exit 1 with a one-line reason when not); the details — workers, the
// queue per destination, the verify cache, rejects — come from the master's /api/status
// (backstop_http_listen), the same data the dashboard shows. With the listener off, only the
// master's pid is known. Reads only.

import { loadConfig } from '../config/index.js';
import { runningPid } from '../master/master.js';
import { parseListen, formatListen } from '../http/index.js';
import { formatStatus } from '../status/index.js';
import type { SystemStatus } from '../observe/index.js';
import type { CommandSpec, ParsedArgs } from './args.js';
import type { CommandIo } from './io.js';

/** How long status waits for the master's answer. */
const ANSWER_LIMIT_MS = 10_000;

export const statusSpec: CommandSpec = {
  name: 'status',
  summary: 'show whether the mail system runs, its workers, queue per destination, verify cache and rejects',
  synopsis: '[-c DIR] [--json]',
  options: { json: { type: 'boolean', help: 'print the status as JSON (the dashboard\'s /api/status)' } },
  description: 'Exit status 0 when the master runs, 1 (with the reason) when it does not.',
};

export async function runStatus(args: ParsedArgs, io: CommandIo): Promise<number> {
  if (args.positionals.length) {
    io.stderr(`backstop status: unexpected argument ${args.positionals[0]} (see 'backstop status --help')\n`);
    return 2;
  }
  const { config } = loadConfig(io.configDir);
  const pid = runningPid(config);
  if (!pid) {
    io.stderr('backstop status: the Backstop mail system is not running (no live master pid file)\n');
    return 1;
  }
  const json = args.values.json === true;
  const partial = (why: string) => {
    if (json) io.stdout(JSON.stringify({ master: { pid }, unavailable: why }, null, 2) + '\n');
    else io.stdout(`Backstop: master pid ${pid} runs; no details: ${why}\n`);
    return 0;
  };
  let listen;
  try {
    listen = parseListen(config.str('backstop_http_listen'));
  } catch (err) {
    return partial(`backstop_http_listen: ${(err as Error).message}`);
  }
  if (!listen) return partial('backstop_http_listen is empty (the status comes from the master\'s HTTP listener)');
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  const url = `http://${formatListen({ host, port: listen.port })}/api/status`;
  let st: SystemStatus;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(ANSWER_LIMIT_MS) });
    if (!res.ok) return partial(`${url} answered HTTP ${res.status}`);
    st = (await res.json()) as SystemStatus;
  } catch (err) {
    return partial(`${url}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
  }
  io.stdout(json ? JSON.stringify(st, null, 2) + '\n' : formatStatus(st));
  return 0;
}
