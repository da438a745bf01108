// DNSSEC-aware queries for DANE (RFC 7672) and MTA-STS: one question to the configured resolvers
// with the DO and AD bits set, and the answer's AD bit reported as `secure`. Like Postfix, we do
// not validate signatures ourselves: we trust the resolver we are configured to use
// (backstop_dns_servers, else /etc/resolv.conf) — which must be a local validating resolver for
// that trust to mean anything — to set AD only on answers it validated, and to answer SERVFAIL
// for bogus ones.
//
// Why not node:dns: its resolver (c-ares) neither sends the DO bit nor shows the AD bit of the
// answer. dns-packet encodes and decodes the messages; the UDP/TCP exchange is the few lines
// below. Every query is bounded by its deadline; a truncated UDP answer is asked again over TCP.

import { createSocket } from 'node:dgram';
import { getServers } from 'node:dns';
import { connect } from 'node:net';
import { randomInt } from 'node:crypto';
import * as packet from 'dns-packet';
import type { DnsError } from './types.js';

export type SecureRecordType = 'TLSA' | 'MX' | 'A' | 'AAAA' | 'TXT';

/** An answer with the resolver's verdict on its DNSSEC status. `ttl` in seconds. */
export type SecureResult<T> =
  | { status: 'ok'; records: T[]; ttl: number; secure: boolean }
  | { status: 'notFound'; secure: boolean }
  | { status: 'noData'; secure: boolean }
  /** SERVFAIL (a validating resolver's answer for bogus data), REFUSED, timeout: try later. */
  | { status: 'tempFail'; error: DnsError };

export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  data: Buffer;
}

export interface SecureDnsOptions {
  /** backstop_dns_servers entries ("IP", "IP:port", "[IPv6]:port"); empty = the system's. */
  servers?: readonly string[];
  /** Deadline of one query, all servers and the TCP retry included (default 10 000 ms). */
  timeoutMs?: number;
}

interface Server {
  host: string;
  port: number;
}

function parseServer(s: string): Server {
  const b = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (b) return { host: b[1], port: Number(b[2] ?? 53) };
  const hp = /^([^:]+):(\d+)$/.exec(s);
  if (hp) return { host: hp[1], port: Number(hp[2]) };
  return { host: s, port: 53 };
}

type Raw = packet.Packet & { rcode?: string };

export class SecureDns {
  private readonly servers: Server[];
  private readonly timeoutMs: number;

  constructor(opts: SecureDnsOptions = {}) {
    const list = opts.servers && opts.servers.length ? [...opts.servers] : getServers();
    this.servers = list.map(parseServer);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** TLSA records of `_port._tcp.host`. */
  async tlsa(host: string, port: number): Promise<SecureResult<TlsaRecord>> {
    const r = await this.query(`_${port}._tcp.${host}`, 'TLSA');
    if (r.status !== 'ok') return r;
    const records = r.records.map((a) => {
      const d = a as packet.TlsaData;
      return { usage: d.usage, selector: d.selector, matchingType: d.matchingType, data: d.certificate };
    });
    return { ...r, records };
  }

  /** TXT records of `name`, each joined from its strings. */
  async txt(name: string): Promise<SecureResult<string>> {
    const r = await this.query(name, 'TXT');
    if (r.status !== 'ok') return r;
    const records = r.records.map((d) => (Array.isArray(d) ? d : [d]).map((x) => Buffer.isBuffer(x) ? x.toString('utf8') : String(x)).join(''));
    return { ...r, records };
  }

  /** One question; the answer records of that type (CNAMEs followed by the resolver). */
  async query(name: string, type: SecureRecordType): Promise<SecureResult<unknown>> {
    const deadline = Date.now() + this.timeoutMs;
    let last: DnsError = { code: 'ESERVFAIL', message: 'no DNS server configured' };
    for (const server of this.servers) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      let res: Raw;
      try {
        res = await exchangeUdp(server, name, type, Math.min(left, Math.max(1000, this.timeoutMs / this.servers.length)));
        if ((res.flags ?? 0) & packet.TRUNCATED_RESPONSE) res = await exchangeTcp(server, name, type, Math.max(1, deadline - Date.now()));
      } catch (err) {
        last = { code: (err as NodeJS.ErrnoException).code ?? 'ETIMEOUT', message: (err as Error).message };
        continue;
      }
      const secure = ((res.flags ?? 0) & packet.AUTHENTIC_DATA) !== 0;
      if (res.rcode === 'NXDOMAIN') return { status: 'notFound', secure };
      if (res.rcode !== 'NOERROR') {
        last = { code: `E${res.rcode ?? 'UNKNOWN'}`, message: `${name} ${type}: ${res.rcode ?? 'unknown rcode'}` };
        continue;
      }
      const answers = (res.answers ?? []).filter((a) => a.type === type);
      if (!answers.length) return { status: 'noData', secure };
      const ttl = Math.min(...answers.map((a) => ('ttl' in a && typeof a.ttl === 'number' ? a.ttl : 0)));
      return { status: 'ok', records: answers.map((a) => (a as { data: unknown }).data), ttl, secure };
    }
    return { status: 'tempFail', error: last };
  }
}

function question(name: string, type: SecureRecordType): packet.Packet {
  return {
    type: 'query',
    id: randomInt(0, 65536),
    // RD, and AD: "tell me whether you validated this" (RFC 6840 section 5.7).
    flags: packet.RECURSION_DESIRED | packet.AUTHENTIC_DATA,
    questions: [{ type, name }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: packet.DNSSEC_OK } as packet.Answer],
  };
}

function exchangeUdp(server: Server, name: string, type: SecureRecordType, timeoutMs: number): Promise<Raw> {
  const q = question(name, type);
  return new Promise((resolve, reject) => {
    const sock = createSocket(server.host.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => done(Object.assign(new Error(`${name} ${type}: query timed out`), { code: 'ETIMEOUT' })), timeoutMs);
    const done = (err: Error | null, res?: Raw) => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(res!);
    };
    sock.on('error', (err) => done(err));
    sock.on('message', (msg) => {
      let res: Raw;
      try {
        res = packet.decode(msg) as Raw;
      } catch {
        return; // not a DNS message: keep waiting for the real answer
      }
      if (res.id !== q.id) return; // a stray or spoofed answer
      done(null, res);
    });
    sock.send(packet.encode(q), server.port, server.host);
  });
}

function exchangeTcp(server: Server, name: string, type: SecureRecordType, timeoutMs: number): Promise<Raw> {
  const q = question(name, type);
  return new Promise((resolve, reject) => {
    const sock = connect({ host: server.host, port: server.port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(Object.assign(new Error(`${name} ${type}: TCP query timed out`), { code: 'ETIMEOUT' })), timeoutMs);
    const done = (err: Error | null, res?: Raw) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    sock.on('error', (err) => done(err));
    sock.on('connect', () => sock.write(packet.streamEncode(q)));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      try {
        const res = packet.streamDecode(buf) as Raw;
        if (res.id !== q.id) return done(new Error(`${name} ${type}: answer for another question`));
        done(null, res);
      } catch (err) {
        done(err as Error);
      }
    });
  });
}
