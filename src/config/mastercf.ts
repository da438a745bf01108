// master.cf: its `inet` lines for the `smtpd` command give Backstop's listening addresses, with
// `-o name=value` overrides per service. Other lines (Postfix's unix services and the like) are
// accepted and ignored with a note, since Backstop runs those jobs in-process.
// A missing master.cf means `smtp inet n - n - - smtpd` (port 25 on inet_interfaces).

import type { Diagnostic } from './diagnostics.js';

export interface MasterService {
  /** The service field: `smtp`, `2525`, `127.0.0.1:2525`, `[::1]:2525`. */
  service: string;
  type: string;
  command: string;
  args: string[];
  /** -o name=value overrides, in order. */
  overrides: Record<string, string>;
  /** Listening host from the service field; undefined means every address of inet_interfaces. */
  host?: string;
  /** The process-limit column (maxproc) when it is a number; `-` leaves it undefined. */
  maxproc?: number;
  port: number;
  file: string;
  line: number;
}

export interface ParsedMasterCf {
  smtpd: MasterService[];
  diagnostics: Diagnostic[];
}

const SERVICE_PORTS: Record<string, number> = { smtp: 25, submission: 587, smtps: 465, submissions: 465 };

function parsePort(p: string): number | undefined {
  if (/^\d+$/.test(p)) {
    const n = Number(p);
    return n > 0 && n < 65536 ? n : undefined;
  }
  return SERVICE_PORTS[p];
}

/** `smtp` / `2525` / `127.0.0.1:2525` / `[::1]:2525` → host and port; undefined when malformed. */
export function parseListen(service: string): { host?: string; port: number } | undefined {
  let m = /^\[([^\]]+)\]:([^:]+)$/.exec(service);
  if (m) {
    const port = parsePort(m[2]);
    return port ? { host: m[1], port } : undefined;
  }
  m = /^([^:]+):([^:]+)$/.exec(service);
  if (m) {
    const port = parsePort(m[2]);
    return port ? { host: m[1], port } : undefined;
  }
  const port = parsePort(service);
  return port ? { port } : undefined;
}

/** Tokenize a logical line, keeping `{ ... }` groups (Postfix 3.0 `-o { name = value }`) whole. */
function tokens(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (/\s/.test(text[i])) { i++; continue; }
    if (text[i] === '{') {
      let depth = 0;
      let j = i;
      for (; j < text.length; j++) {
        if (text[j] === '{') depth++;
        else if (text[j] === '}' && --depth === 0) break;
      }
      out.push(text.slice(i, j + 1));
      i = j + 1;
      continue;
    }
    let j = i;
    while (j < text.length && !/\s/.test(text[j])) j++;
    out.push(text.slice(i, j));
    i = j;
  }
  return out;
}

export function parseMasterCf(text: string, file: string): ParsedMasterCf {
  const smtpd: MasterService[] = [];
  const diagnostics: Diagnostic[] = [];
  const logical: { text: string; line: number }[] = [];
  text.split(/\r?\n/).forEach((raw, idx) => {
    if (/^\s*#/.test(raw) || /^\s*$/.test(raw)) return;
    if (/^\s/.test(raw) && logical.length) logical[logical.length - 1].text += ' ' + raw.trim();
    else logical.push({ text: raw.trim(), line: idx + 1 });
  });

  for (const { text: t, line } of logical) {
    const f = tokens(t);
    if (f.length < 8) {
      diagnostics.push({ severity: 'error', file, line, message: `bad field count (need at least 8 fields): "${t}"` });
      continue;
    }
    const [service, type, , , , , maxprocField, command, ...rest] = f;
    if (type !== 'inet' || command !== 'smtpd') {
      diagnostics.push({ severity: 'note', file, line, message: `service "${service}" (${type} ${command}) is handled inside Backstop; line ignored` });
      continue;
    }
    const listen = parseListen(service);
    if (!listen) {
      diagnostics.push({ severity: 'error', file, line, message: `bad inet service "${service}": expected port, name:port, [ipv6]:port or a service name (smtp, submission, smtps)` });
      continue;
    }
    const overrides: Record<string, string> = {};
    const args: string[] = [];
    for (let i = 0; i < rest.length; i++) {
      if (rest[i] === '-o') {
        let kv = rest[++i];
        if (kv === undefined) {
          diagnostics.push({ severity: 'error', file, line, message: '-o without name=value' });
          break;
        }
        if (kv.startsWith('{')) kv = kv.slice(1, -1).trim();
        const m = /^([A-Za-z0-9_]+)\s*=\s*([\s\S]*)$/.exec(kv);
        if (!m) {
          diagnostics.push({ severity: 'error', file, line, message: `bad -o option "${kv}": expected name=value` });
          continue;
        }
        overrides[m[1]] = m[2].trim();
      } else {
        args.push(rest[i]);
      }
    }
    if (maxprocField !== '-' && !/^\d+$/.test(maxprocField)) {
      diagnostics.push({ severity: 'error', file, line, message: `bad process limit "${maxprocField}": expected a number or -` });
      continue;
    }
    const maxproc = maxprocField === '-' ? {} : { maxproc: Number(maxprocField) };
    smtpd.push({ service, type, command, args, overrides, ...listen, ...maxproc, file, line });
  }
  return { smtpd, diagnostics };
}

export const DEFAULT_MASTER_CF = 'smtp      inet  n       -       n       -       -       smtpd\n';
