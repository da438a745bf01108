// The master's HTTP listener (backstop_http_listen): started after the services, moved, stopped or
// given a new action token on reload. It serves what src/http builds from the workers' reports.

import type { Config } from '../config/index.js';
import { maillog } from '../log/index.js';
import { enableProcessMetrics } from '../observe/index.js';
import { formatListen, loadActionAuth, parseListen, startHttp, type HttpServer } from '../http/index.js';
import type { App } from './master.js';
import { configPath } from './paths.js';

/**
 * The master's HTTP listener (backstop_http_listen), started after the services and moved or
 * stopped on reload. A listener that cannot bind is logged and the mail system runs without it:
 * mail matters more than its dashboard.
 */
export class HttpListener {
  private server: HttpServer | undefined;
  private bound = '';
  /** When the master process started (its uptime in the status). */
  private readonly started = Date.now() - Math.round(process.uptime() * 1000);

  constructor(private readonly app: App, private readonly version: string, private readonly log = maillog.logger('master')) {
    enableProcessMetrics();
  }

  private chain: Promise<void> = Promise.resolve();

  /** Serialized: a SIGHUP during the first start waits for it. */
  reload(config: Config): Promise<void> {
    this.chain = this.chain.then(() => this.apply(config));
    return this.chain;
  }

  private async apply(config: Config): Promise<void> {
    const want = config.str('backstop_http_listen').trim();
    const auth = loadActionAuth(config.str('backstop_http_action_token_file') ? configPath(config, 'backstop_http_action_token_file') : '');
    if (auth.problem) this.log.warning(auth.problem);
    const queueDirectory = configPath(config, 'queue_directory');
    if (this.server && want === this.bound) {
      this.server.update({ auth, queueDirectory });
      return;
    }
    let listen;
    try {
      listen = parseListen(want);
    } catch (err) {
      this.log.error(`backstop_http_listen: ${(err as Error).message}`);
      return;
    }
    if (!listen) return;
    await this.shut();
    try {
      this.server = await startHttp({ listen, auth, queueDirectory, master: { version: this.version, pid: process.pid, started: this.started }, observe: () => this.app.observe() });
      this.bound = want;
      this.log.info(`http listening on ${formatListen(this.server.address())}${auth.digest ? '' : ' (read-only)'}`);
    } catch (err) {
      this.log.error(`${(err as Error).message}: no metrics or dashboard`);
    }
  }

  close(): Promise<void> {
    this.chain = this.chain.then(() => this.shut());
    return this.chain;
  }

  private async shut(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    this.bound = '';
    await s?.close();
  }
}
