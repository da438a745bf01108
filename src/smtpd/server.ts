// startSmtpd: one smtp-server listener per master.cf `inet ... smtpd` address, each with its
// service's -o overrides, sharing one anvil (per-client connection limits). reload() builds a new
// generation (settings, restriction engine, SASL client) per listener: new sessions take it,
// running sessions finish on the one they started with, and an old generation is closed when
// its last session ends. BackstopServer subclasses smtp-server's SMTPServer only to construct
// BackstopConnections. Trusts the config module for values and the engine factory for engines.

import type { AddressInfo, Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { Config, MasterService } from '../config/index.js';
import { maillog, type Logger } from '../log/index.js';
import type { RestrictionEngine } from './check/types.js';
import type { MessageSink, ClientNameLookup, ConnectionCounter, Flusher } from './types.js';
import { readSettings, type SmtpdSettings } from './settings.js';
import { Anvil } from './anvil.js';
import { compileNetworks, type SmtpdNetworks } from './networks.js';
import { BackstopConnection } from './connection.js';
import type { SessionContext } from './session.js';
import { DovecotAuthClient } from './sasl/dovecot.js';

/** smtp-server's server with one change: its connections are BackstopConnections. */
export class BackstopServer extends SMTPServer {
  constructor(
    options: ConstructorParameters<typeof SMTPServer>[0],
    private readonly context: () => SessionContext,
  ) {
    super(options);
  }

  override connect(socket: Socket, socketOptions: object): void {
    const self = this as unknown as { connections: Set<SMTPConnection>; _onError(err: Error): void };
    const connection = new BackstopConnection(this, socket, socketOptions, this.context());
    self.connections.add(connection);
    connection.on('error', (err: Error) => self._onError(err));
    connection.init();
  }
}

export interface SmtpdOptions {
  config: Config;
  services: MasterService[];
  engine: RestrictionEngine | ((cfg: Config) => RestrictionEngine);
  queue: MessageSink;
  flusher?: Flusher;
  dns?: ClientNameLookup;
  log?: Logger;
  /** How long close() lets running sessions finish before it answers them 421; default 10 s. */
  closeTimeoutMs?: number;
  /** Connection accounting shared beyond this process (the master's anvil); default: one here. */
  anvil?: ConnectionCounter;
}

export interface Smtpd {
  addresses(): Array<{ host: string; port: number }>;
  reload(newConfig: Config): void;
  /** Stop: no new connections; running sessions get closeTimeoutMs, then 421. */
  close(): Promise<void>;
  /**
   * Retire (a reload replaced this process): no new connections; running sessions go on as
   * usual, on the configuration they started with, and the promise resolves when the last ends.
   */
  retire(): Promise<void>;
}

interface Generation {
  settings: SmtpdSettings;
  networks: SmtpdNetworks;
  engine: RestrictionEngine;
  ownsEngine: boolean;
  sasl?: DovecotAuthClient;
  refs: number;
  retired: boolean;
}

interface Listener {
  service: MasterService;
  host: string;
  server: BackstopServer;
  gen: Generation;
}

/** Listening hosts for a service: its own host, else inet_interfaces (`all` → 0.0.0.0 and ::). */
export function listenHosts(service: MasterService, cfg: Config): string[] {
  if (service.host) return [service.host];
  const out: string[] = [];
  for (const i of cfg.list('inet_interfaces')) {
    if (i === 'all') out.push('0.0.0.0', '::');
    else if (i === 'loopback-only') out.push('127.0.0.1', '::1');
    else out.push(i.replace(/^\[(.*)\]$/, '$1'));
  }
  return out;
}

export async function startSmtpd(opts: SmtpdOptions): Promise<Smtpd> {
  const log = opts.log ?? maillog.logger('smtpd');
  const local = opts.anvil ? undefined : new Anvil();
  const anvil: ConnectionCounter = opts.anvil ?? local!;
  const listeners: Listener[] = [];
  const engines = new Map<Config, RestrictionEngine>();

  const engineFor = (cfg: Config): { engine: RestrictionEngine; owns: boolean } => {
    if (typeof opts.engine !== 'function') return { engine: opts.engine, owns: false };
    let e = engines.get(cfg);
    if (!e) {
      e = opts.engine(cfg);
      engines.set(cfg, e);
    }
    return { engine: e, owns: true };
  };

  const liveEngines = new Map<RestrictionEngine, number>();
  const retain = (e: RestrictionEngine) => liveEngines.set(e, (liveEngines.get(e) ?? 0) + 1);
  const dropEngine = (e: RestrictionEngine, owns: boolean) => {
    const n = (liveEngines.get(e) ?? 1) - 1;
    if (n > 0) return liveEngines.set(e, n);
    liveEngines.delete(e);
    if (owns) e.close().catch((err: Error) => log.warning(`restriction engine close: ${err.message}`));
  };

  const makeGeneration = (svcCfg: Config, engine: { engine: RestrictionEngine; owns: boolean }): Generation => {
    const settings = readSettings(svcCfg);
    const networks = compileNetworks(svcCfg, log);
    const sasl =
      settings.sasl.enabled && settings.sasl.type === 'dovecot'
        ? new DovecotAuthClient({ path: settings.sasl.path, timeoutMs: settings.timeout * 1000 })
        : undefined;
    if (settings.sasl.enabled && settings.sasl.type !== 'dovecot') {
      log.warning(`smtpd_sasl_type = ${settings.sasl.type} is not supported; SMTP AUTH is not offered`);
    }
    retain(engine.engine);
    return { settings, networks, engine: engine.engine, ownsEngine: engine.owns, sasl, refs: 0, retired: false };
  };

  const maybeRetire = (g: Generation) => {
    if (!g.retired || g.refs > 0) return;
    g.sasl?.close();
    g.sasl = undefined;
    g.networks.close();
    dropEngine(g.engine, g.ownsEngine);
  };

  const contextFor = (l: Listener) => (): SessionContext => {
    const g = l.gen;
    g.refs++;
    let released = false;
    return {
      settings: g.settings,
      networks: g.networks,
      engine: g.engine,
      queue: opts.queue,
      flusher: opts.flusher,
      dns: opts.dns,
      log,
      anvil,
      sasl: g.sasl,
      service: l.service.service,
      release: () => {
        if (released) return;
        released = true;
        g.refs--;
        maybeRetire(g);
      },
    };
  };

  const tlsOptions = (s: SmtpdSettings) => (s.tls.level !== 'none' ? { key: s.tls.key, cert: s.tls.cert, minVersion: s.tls.minVersion, maxVersion: s.tls.maxVersion } : {});

  try {
    for (const service of opts.services) {
      const svcCfg = opts.config.withOverrides(service.overrides);
      for (const host of listenHosts(service, svcCfg)) {
        const gen = makeGeneration(svcCfg, engineFor(opts.config));
        const listener = { service, host, gen } as Listener;
        const server = new BackstopServer(
          {
            logger: false,
            disableReverseLookup: true,
            hideSTARTTLS: gen.settings.tls.level === 'none',
            name: gen.settings.myhostname,
            closeTimeout: opts.closeTimeoutMs ?? 10_000,
            ...tlsOptions(gen.settings),
          },
          contextFor(listener),
        );
        listener.server = server;
        // Socket and TLS errors of single sessions arrive here; they never stop the server.
        server.on('error', (err: Error & { remoteAddress?: string }) => {
          log.warning(`${err.remoteAddress ? `[${err.remoteAddress}]: ` : ''}${err.message}`);
        });
        await new Promise<void>((resolve, reject) => {
          const onErr = (err: Error) => reject(new Error(`cannot listen on ${host}:${service.port}: ${err.message}`));
          server.server.once('error', onErr);
          server.listen(service.port, host, () => {
            server.server.removeListener('error', onErr);
            resolve();
          });
        });
        listeners.push(listener);
      }
    }
  } catch (err) {
    for (const l of listeners) l.server.server.close();
    throw err;
  }

  const pruner = setInterval(() => local?.prune(Math.max(...listeners.map((l) => l.gen.settings.rateTimeUnit), 60)), 60_000);
  pruner.unref();

  return {
    addresses() {
      return listeners.map((l) => {
        const a = l.server.server.address() as AddressInfo;
        return { host: a.address, port: a.port };
      });
    },
    reload(newConfig: Config) {
      // Build every new generation first, so a bad configuration changes nothing.
      const next = listeners.map((l) => makeGeneration(newConfig.withOverrides(l.service.overrides), engineFor(newConfig)));
      listeners.forEach((l, i) => {
        const old = l.gen;
        l.gen = next[i];
        const tls = tlsOptions(next[i].settings);
        if (tls.key && tls.cert) l.server.updateSecureContext(tls);
        l.server.options.hideSTARTTLS = next[i].settings.tls.level === 'none';
        l.server.options.name = next[i].settings.myhostname;
        old.retired = true;
        maybeRetire(old);
      });
    },
    async retire() {
      clearInterval(pruner);
      // net.Server's close callback runs once every connection has ended; smtp-server's own
      // close() would instead answer the sessions' next commands with 421.
      await Promise.all(listeners.map((l) => new Promise<void>((resolve) => l.server.server.close(() => resolve()))));
      for (const l of listeners) {
        l.gen.retired = true;
        maybeRetire(l.gen);
      }
    },
    async close() {
      clearInterval(pruner);
      await Promise.all(listeners.map((l) => new Promise<void>((resolve) => l.server.close(() => resolve()))));
      for (const l of listeners) {
        l.gen.retired = true;
        maybeRetire(l.gen);
      }
    },
  };
}
