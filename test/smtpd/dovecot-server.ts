// Test helper: a small server speaking the Dovecot auth protocol (server side, version 1.2) on
// loopback, with a user list. Mechanisms PLAIN and LOGIN; LOGIN asks "Username:" and "Password:"
// through CONT lines, as Dovecot does. Records every AUTH line it receives.

import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface DovecotTestServer {
  port: number;
  path: string;
  requests: string[];
  close(): Promise<void>;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

export async function startDovecotAuth(users: Record<string, string>, opts: { mechs?: string[] } = {}): Promise<DovecotTestServer> {
  const requests: string[] = [];
  const mechs = opts.mechs ?? ['PLAIN', 'LOGIN'];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    sock.write('VERSION\t1\t2\n' + mechs.map((m) => `MECH\t${m}\tplaintext\n`).join('') + 'SPID\t1\nCUID\t1\nCOOKIE\tabc\nDONE\n');
    const state = new Map<string, { mech: string; user?: string }>();
    let buf = '';
    const finish = (id: string, user: string, pass: string) => {
      state.delete(id);
      if (users[user] !== undefined && users[user] === pass) sock.write(`OK\t${id}\tuser=${user}\n`);
      else sock.write(`FAIL\t${id}\tuser=${user}\treason=Invalid credentials\n`);
    };
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const f = line.split('\t');
        if (f[0] === 'AUTH') {
          requests.push(line);
          const [, id, mech] = f;
          const resp = f.find((x) => x.startsWith('resp='))?.slice(5);
          if (!mechs.includes(mech)) {
            sock.write(`FAIL\t${id}\treason=Unsupported mechanism\n`);
          } else if (mech === 'PLAIN') {
            if (resp === undefined || resp === '') {
              state.set(id, { mech });
              sock.write(`CONT\t${id}\t\n`);
            } else {
              const [, u, p] = unb64(resp).split('\0');
              finish(id, u ?? '', p ?? '');
            }
          } else {
            if (resp) {
              state.set(id, { mech, user: unb64(resp) });
              sock.write(`CONT\t${id}\t${b64('Password:')}\n`);
            } else {
              state.set(id, { mech });
              sock.write(`CONT\t${id}\t${b64('Username:')}\n`);
            }
          }
        } else if (f[0] === 'CONT') {
          const [, id, data] = f;
          const st = state.get(id);
          if (!st) continue;
          if (st.mech === 'PLAIN') {
            const [, u, p] = unb64(data ?? '').split('\0');
            finish(id, u ?? '', p ?? '');
          } else if (st.user === undefined) {
            st.user = unb64(data ?? '');
            sock.write(`CONT\t${id}\t${b64('Password:')}\n`);
          } else {
            finish(id, st.user, unb64(data ?? ''));
          }
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    path: `inet:127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
