// Postfix's match lists (match_list(3)): the syntax of mynetworks, permit_mx_backup_networks,
// mydestination and relay_domains. Elements are tried in order and the first match wins;
// `!pattern` negates; `type:table` looks the name (or address) up; `/file` holds more
// patterns. Host and domain patterns match the name exactly, `.domain` matches subdomains, and
// a plain `domain` also matches subdomains when the parameter is listed in
// parent_domain_matches_subdomains. Networks are `a.b.c.d/n` or `[ipv6]/n`; addresses are read
// with mail's parseIp (IPv4-mapped IPv6 is the IPv4 address). smtpd's one network matcher.
// Compiled once at load: a bad network or table fails there, naming the parameter.

import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import type ipaddr from 'ipaddr.js';
import { splitList } from '../../config/index.js';
import { parseIp, type IpAddress } from '../../mail/index.js';
import type { LookupTable } from '../../tables/index.js';

type Parsed = IpAddress;

type Pattern =
  | { kind: 'net'; negate: boolean; net: [Parsed, number] }
  | { kind: 'name'; negate: boolean; name: string }
  | { kind: 'table'; negate: boolean; table: LookupTable; pattern: boolean };

export interface MatchListOptions {
  /** Parameter name, for messages and parent-domain matching. */
  param: string;
  /** `domain` also matches its subdomains (parent_domain_matches_subdomains lists the param). */
  parentMatch: boolean;
  /** Opens (and caches) a table reference. */
  openTable: (ref: string) => LookupTable;
  baseDir: string;
}

/** `1.2.3.0/24`, `[2001:db8::]/32`, `1.2.3.4`, `[::1]` → network; undefined when not a network. */
export function parseNetwork(text: string): [Parsed, number] | undefined {
  const m = /^(\[[^\]]+\]|[^/]+)(?:\/(\d{1,3}))?$/.exec(text);
  if (!m) return undefined;
  const ip = parseIp(m[1]);
  if (!ip) return undefined;
  const max = ip.kind() === 'ipv4' ? 32 : 128;
  const len = m[2] === undefined ? max : Number(m[2]);
  if (len > max) return undefined;
  return [ip, len];
}

export class MatchList {
  private constructor(readonly param: string, private readonly patterns: Pattern[], private readonly parentMatch: boolean) {}

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /** Compile the elements; throws an Error naming the parameter and the bad element. */
  static compile(elements: readonly string[], opts: MatchListOptions, depth = 0): MatchList {
    const patterns: Pattern[] = [];
    for (let raw of elements) {
      let negate = false;
      while (raw.startsWith('!')) {
        negate = !negate;
        raw = raw.slice(1);
      }
      if (raw === '') throw new Error(`${opts.param}: empty pattern after "!"`);
      if (raw.startsWith('/') || (depth === 0 && isAbsolute(raw))) {
        if (depth > 10) throw new Error(`${opts.param}: file nesting too deep at ${raw}`);
        let text: string;
        try {
          text = readFileSync(raw, 'utf8');
        } catch (err) {
          throw new Error(`${opts.param}: open ${raw}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (err as Error).message}`);
        }
        const inner = text.split('\n').map((l) => l.replace(/#.*/, '')).flatMap((l) => splitList(l));
        const sub = MatchList.compile(inner, opts, depth + 1);
        patterns.push(...sub.patterns.map((p) => (negate ? { ...p, negate: !p.negate } : p)));
        continue;
      }
      const net = /[/\[\]]/.test(raw) || parseIp(raw) ? parseNetwork(raw) : undefined;
      if (net) {
        patterns.push({ kind: 'net', negate, net });
        continue;
      }
      if (/[/\[\]]/.test(raw) && !/^[a-z0-9_]+:/i.test(raw)) throw new Error(`${opts.param}: bad network pattern: ${raw}`);
      const table = /^([a-z0-9_]+):(.+)$/i.exec(raw);
      if (table && !/^\d/.test(raw)) {
        const t = opts.openTable(raw);
        patterns.push({ kind: 'table', negate, table: t, pattern: ['cidr', 'regexp', 'pcre'].includes(t.type) });
        continue;
      }
      if (/^[0-9a-f:.]+$/i.test(raw) && /\d/.test(raw) && (raw.includes(':') || /^\d+(\.\d+){3}$/.test(raw)))
        throw new Error(`${opts.param}: bad network pattern: ${raw}`);
      patterns.push({ kind: 'name', negate, name: raw.toLowerCase() });
    }
    return new MatchList(opts.param, patterns, opts.parentMatch);
  }

  /** Match an address against the network patterns only (no tables, no names): for the linter. */
  matchSync(addr: string): boolean {
    const ip = parseIp(addr);
    if (!ip) return false;
    for (const p of this.patterns) {
      if (p.kind === 'net' && ip.kind() === p.net[0].kind() && ip.match(p.net as [ipaddr.IPv4, number])) return !p.negate;
    }
    return false;
  }

  /** Close the tables this list opened itself. */
  close(): void {
    for (const p of this.patterns) if (p.kind === 'table') p.table.close();
  }

  /** Match a domain name (mydestination, relay_domains). */
  matchDomain(domain: string): Promise<boolean> {
    return this.match(domain.toLowerCase().replace(/\.$/, ''), undefined);
  }

  /** Match a host by name and/or address (mynetworks, permit_mx_backup_networks). */
  async match(name: string | undefined, addr: string | undefined): Promise<boolean> {
    const ip = addr ? parseIp(addr) : undefined;
    const ipText = ip ? ip.toString() : undefined;
    for (const p of this.patterns) {
      let hit = false;
      if (p.kind === 'net') {
        hit = !!ip && ip.kind() === p.net[0].kind() && ip.match(p.net as [ipaddr.IPv4, number]);
      } else if (p.kind === 'name') {
        hit = !!name && this.nameMatches(name, p.name);
      } else {
        if (name && !(p.pattern && p.table.type === 'cidr')) hit = (await this.tableHostname(p.table, name, p.pattern)) !== undefined;
        if (!hit && ipText) hit = (await p.table.get(ipText)) !== undefined;
      }
      if (hit) return !p.negate;
    }
    return false;
  }

  private nameMatches(name: string, pattern: string): boolean {
    if (name === pattern) return true;
    if (pattern.startsWith('.')) return name.endsWith(pattern);
    return this.parentMatch && name.endsWith('.' + pattern);
  }

  private async tableHostname(table: LookupTable, name: string, pattern: boolean): Promise<string | undefined> {
    let entry = name;
    for (;;) {
      const v = await table.get(entry);
      if (v !== undefined) return v;
      if (pattern) return undefined;
      const dot = entry.indexOf('.', entry.startsWith('.') ? 1 : 0);
      if (dot < 0) return undefined;
      entry = this.parentMatch ? entry.slice(dot + 1) : entry.slice(dot);
      if (entry === '' || entry === '.') return undefined;
    }
  }
}
