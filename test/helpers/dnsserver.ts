// Test DNS server: a real authoritative DNS server on 127.0.0.1 (UDP and TCP on the same
// ephemeral port), built with dns2 and started in-process, serving zones a test declares.
// Tests point Backstop at it through `backstop_dns_servers = <servers>`; nothing is mocked.
// It trusts the zone spec it is given and nothing else; it never recurses or forwards.
//
//   const dns = await startDnsServer({
//     'example.test': { MX: [[10, 'mx1.example.test'], [20, 'backup.test']] },
//     'mx1.example.test': { A: ['127.0.0.2'], AAAA: ['::1'] },
//     'nullmx.test': { MX: [[0, '.']] },
//     'broken.test': 'servfail',
//     'slow.test': 'timeout',
//     'half.test': { A: ['127.0.0.3'], MX: 'servfail' },   // per-type behaviour
//     '*.wild.test': { A: ['127.0.0.4'] },                  // wildcard
//   });
//   ... backstop_dns_servers = dns.servers ...
//   await dns.close();
//
// Answers are proper authoritative answers (AA set): records → NOERROR with answers;
// an existing name (or empty non-terminal) without records of the asked type → NOERROR
// with no answers (NODATA); an absent name → NXDOMAIN. Negative answers carry an SOA in
// the authority section, whose minimum is the negative TTL (RFC 2308).
// `set()` swaps the zone at once; node:dns in Node 20 keeps no answer cache of its own
// (checked by a test below), so only Backstop's resolver cache can hide a change.

import net from 'node:net';
import dns2 from 'dns2';

const { Packet, UDPServer, TCPServer } = dns2;
type DnsPacket = InstanceType<typeof Packet>;
type DnsResource = DnsPacket['answers'][number];

/** A behaviour instead of an answer. `timeout` never answers at all. */
export type DnsBehaviour = 'nxdomain' | 'servfail' | 'refused' | 'timeout';
/** Per-type behaviour: answers normally for other types. */
export type TypeBehaviour = 'servfail' | 'refused' | 'timeout';

export interface NameSpec {
  A?: string[] | TypeBehaviour;
  AAAA?: string[] | TypeBehaviour;
  /** [preference, exchange]; null MX (RFC 7505) is `[[0, '.']]`. */
  MX?: Array<[number, string]> | TypeBehaviour;
  /** Each entry is one TXT record; a string[] entry is one record of several strings. */
  TXT?: Array<string | string[]> | TypeBehaviour;
  PTR?: string[] | TypeBehaviour;
  /** A CNAME; the server follows it within the zone for other types. */
  CNAME?: string;
  /** TTL of this name's records (default: the server's `ttl`). */
  ttl?: number;
}

export type ZoneSpec = Record<string, NameSpec | DnsBehaviour>;

export interface DnsServerOptions {
  /** Default TTL of records, seconds (default 300). */
  ttl?: number;
  /** Negative TTL: SOA minimum and SOA TTL on NXDOMAIN/NODATA (default 60). */
  negativeTtl?: number;
}

export interface QueryLogEntry {
  name: string;
  type: string;
}

export interface TestDnsServer {
  address: '127.0.0.1';
  port: number;
  /** "127.0.0.1:PORT", the value for backstop_dns_servers. */
  servers: string;
  /** Replace the zone (takes effect for the next query). */
  set(zone: ZoneSpec): void;
  /** Number of queries received so far (UDP + TCP, including unanswered ones). */
  readonly queries: number;
  /** Every query received, in order. */
  readonly log: readonly QueryLogEntry[];
  close(): Promise<void>;
}

const TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Packet.TYPE).map(([name, code]) => [code as number, name]),
);

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

function normalise(name: string): string {
  return name.toLowerCase().replace(/\.+$/, '');
}

function normaliseZone(zone: ZoneSpec): Map<string, NameSpec | DnsBehaviour> {
  const map = new Map<string, NameSpec | DnsBehaviour>();
  for (const [name, spec] of Object.entries(zone)) {
    map.set(normalise(name), spec);
  }
  return map;
}

/** Find the spec for a name: exact, else the closest `*.` wildcard above it. */
function lookup(
  zone: Map<string, NameSpec | DnsBehaviour>,
  qname: string,
): NameSpec | DnsBehaviour | undefined {
  const exact = zone.get(qname);
  if (exact !== undefined) return exact;
  const labels = qname.split('.');
  for (let i = 1; i < labels.length; i++) {
    const wild = zone.get('*.' + labels.slice(i).join('.'));
    if (wild !== undefined) return wild;
  }
  return undefined;
}

/** True when some declared name lies below qname (an empty non-terminal exists). */
function hasDescendant(zone: Map<string, NameSpec | DnsBehaviour>, qname: string): boolean {
  const suffix = '.' + qname;
  for (const name of zone.keys()) {
    if (name.endsWith(suffix)) return true;
  }
  return false;
}

function soaFor(qname: string, negativeTtl: number): DnsResource {
  // The apex is the last label ("test", "arpa", ...): every test zone is served as if
  // this server were authoritative for the whole top-level domain.
  const labels = qname.split('.');
  const apex = labels[labels.length - 1] || '';
  return Object.assign(new Packet.Resource(apex, Packet.TYPE.SOA, Packet.CLASS.IN, negativeTtl), {
    primary: `ns.${apex}`,
    admin: `hostmaster.${apex}`,
    serial: 1,
    refresh: 3600,
    retry: 600,
    expiration: 86400,
    minimum: negativeTtl,
  });
}

function records(name: string, type: string, spec: NameSpec, ttl: number): DnsResource[] | TypeBehaviour {
  const mk = (typeCode: number, data: Partial<DnsResource>): DnsResource =>
    Object.assign(new Packet.Resource(name, typeCode, Packet.CLASS.IN, ttl), data);
  switch (type) {
    case 'A':
    case 'AAAA': {
      const v = spec[type];
      if (typeof v === 'string') return v;
      return (v ?? []).map((address) => mk(Packet.TYPE[type], { address }));
    }
    case 'MX': {
      const v = spec.MX;
      if (typeof v === 'string') return v;
      return (v ?? []).map(([priority, exchange]) => mk(Packet.TYPE.MX, { priority, exchange: normalise(exchange) }));
    }
    case 'TXT': {
      const v = spec.TXT;
      if (typeof v === 'string') return v;
      return (v ?? []).map((data) => mk(Packet.TYPE.TXT, { data }));
    }
    case 'PTR': {
      const v = spec.PTR;
      if (typeof v === 'string') return v;
      return (v ?? []).map((domain) => mk(Packet.TYPE.PTR, { domain: normalise(domain) }));
    }
    case 'CNAME':
      return spec.CNAME ? [mk(Packet.TYPE.CNAME, { domain: normalise(spec.CNAME) })] : [];
    default:
      return [];
  }
}

type Outcome =
  | { kind: 'answer'; rcode: number; answers: DnsResource[]; soa: boolean }
  | { kind: 'timeout' };

/** Compute the answer to one question from the zone. */
function answer(
  zone: Map<string, NameSpec | DnsBehaviour>,
  qname: string,
  type: string,
  opts: Required<DnsServerOptions>,
): Outcome {
  const answers: DnsResource[] = [];
  let name = qname;
  for (let hops = 0; hops < 8; hops++) {
    const spec = lookup(zone, name);
    if (spec === 'timeout') return { kind: 'timeout' };
    if (spec === 'servfail') return { kind: 'answer', rcode: RCODE.SERVFAIL, answers: [], soa: false };
    if (spec === 'refused') return { kind: 'answer', rcode: RCODE.REFUSED, answers: [], soa: false };
    if (spec === undefined || spec === 'nxdomain') {
      if (spec === undefined && hasDescendant(zone, name)) {
        return { kind: 'answer', rcode: RCODE.NOERROR, answers, soa: answers.length === 0 };
      }
      return { kind: 'answer', rcode: RCODE.NXDOMAIN, answers, soa: true };
    }
    const ttl = spec.ttl ?? opts.ttl;
    if (spec.CNAME && type !== 'CNAME') {
      answers.push(...(records(name, 'CNAME', spec, ttl) as DnsResource[]));
      name = normalise(spec.CNAME);
      continue;
    }
    const found = records(name, type, spec, ttl);
    if (typeof found === 'string') {
      if (found === 'timeout') return { kind: 'timeout' };
      return { kind: 'answer', rcode: found === 'servfail' ? RCODE.SERVFAIL : RCODE.REFUSED, answers: [], soa: false };
    }
    answers.push(...found);
    return { kind: 'answer', rcode: RCODE.NOERROR, answers, soa: found.length === 0 };
  }
  return { kind: 'answer', rcode: RCODE.SERVFAIL, answers: [], soa: false };
}

/** Start the server on 127.0.0.1, UDP and TCP on one ephemeral port. */
export async function startDnsServer(zone: ZoneSpec, options: DnsServerOptions = {}): Promise<TestDnsServer> {
  const opts: Required<DnsServerOptions> = { ttl: options.ttl ?? 300, negativeTtl: options.negativeTtl ?? 60 };
  let current = normaliseZone(zone);
  const log: QueryLogEntry[] = [];

  const handle = (request: DnsPacket, send: (response: DnsPacket) => Promise<Buffer>): void => {
    const response = Packet.createResponseFromRequest(request);
    response.header.aa = 1;
    const question = request.questions[0];
    if (!question) {
      log.push({ name: '', type: '' });
      response.header.rcode = 1; // FORMERR
      send(response).catch(() => undefined);
      return;
    }
    const qname = normalise(question.name);
    const type = TYPE_NAMES[question.type] ?? String(question.type);
    log.push({ name: qname, type });
    const outcome = answer(current, qname, type, opts);
    if (outcome.kind === 'timeout') return;
    response.header.rcode = outcome.rcode;
    response.answers = outcome.answers;
    if (outcome.soa) response.authorities = [soaFor(qname, opts.negativeTtl)];
    send(response).catch(() => undefined);
  };

  // UDP on an ephemeral port, then TCP on the same port (c-ares retries over TCP when an
  // answer is truncated); if that TCP port is taken, start again with a fresh port.
  let bound: { udp: InstanceType<typeof UDPServer>; tcp: InstanceType<typeof TCPServer> } | undefined;
  const sockets = new Set<net.Socket>();
  for (let attempt = 0; attempt < 10 && !bound; attempt++) {
    const udp = new UDPServer({ type: 'udp4' });
    udp.on('request', (req, send) => handle(req, send));
    udp.on('requestError', () => undefined);
    udp.on('error', () => undefined);
    await udp.listen(0, '127.0.0.1');
    const tcp = new TCPServer();
    tcp.on('request', (req, send) => handle(req, send));
    tcp.on('requestError', () => undefined);
    tcp.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    });
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(udp.address().port, '127.0.0.1', () => resolve(true));
    });
    if (ok) bound = { udp, tcp };
    else await new Promise<void>((resolve) => udp.close(() => resolve()));
  }
  if (!bound) throw new Error('dnsserver: could not bind UDP and TCP on one loopback port');
  const { udp, tcp } = bound;
  tcp.on('error', () => undefined);
  const port = udp.address().port;

  let closed = false;
  return {
    address: '127.0.0.1',
    port,
    servers: `127.0.0.1:${port}`,
    set(next: ZoneSpec) {
      current = normaliseZone(next);
    },
    get queries() {
      return log.length;
    },
    get log() {
      return log;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const s of sockets) s.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
}
