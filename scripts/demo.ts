// `npm run demo`: the seed tutorial's whole story on loopback, narrated. A DNS server on
// 127.0.0.1 says primary.test's MX are mx1 (127.0.0.2, preference 10) and this Backstop
// (127.0.0.1, preference 20); the primary is an SMTP sink on 127.0.0.2 that knows alice and bob.
// Nothing leaves the machine.
import { startDnsServer } from '../test/helpers/dnsserver.js';
import { startSink, type Sink } from '../test/helpers/sink.js';
import { talk, type Talk } from '../test/helpers/smtp-client.js';
import { freePort, sleep } from '../test/helpers/net.js';
import { makeConfigDir, startServer } from '../test/helpers/server.js';
import { runCli } from '../test/helpers/cli.js';

const say = (s: string) => console.log(`\n== ${s}`);
const show = (dir: '>' | '<', s: string) => console.log(s.split('\n').map((l) => `   ${dir} ${l}`).join('\n'));

async function cmd(t: Talk, line: string): Promise<string> {
  show('>', line);
  const r = await t.cmd(line);
  show('<', r);
  return r;
}

async function session(port: number, rcpts: string[], body?: string): Promise<void> {
  const t = await talk(port);
  show('<', t.greeting);
  await cmd(t, 'EHLO client.example');
  await cmd(t, 'MAIL FROM:<someone@sender.test>');
  let ok = 0;
  for (const r of rcpts) if ((await cmd(t, `RCPT TO:<${r}>`)).startsWith('250')) ok++;
  if (body && ok) {
    await cmd(t, 'DATA');
    show('>', '(message)');
    show('<', await t.data(body));
  }
  await cmd(t, 'QUIT');
  t.close();
}

async function main(): Promise<void> {
  const dns = await startDnsServer({
    'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] },
    'mx1.primary.test': { A: ['127.0.0.2'] },
    'mx2.backup.test': { A: ['127.0.0.1'] },
    'other.test': { MX: [[10, 'mx.other.test']] },
    'mx.other.test': { A: ['127.0.0.5'] },
  });
  const port = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const users = ['alice@primary.test', 'bob@primary.test'];
  const dir = makeConfigDir({
    'main.cf': [
      'myhostname = mx2.backup.test',
      'mydestination =',
      'inet_interfaces = 127.0.0.1',
      'mynetworks = 127.0.0.254/32',
      'queue_directory = spool',
      'data_directory = data',
      `backstop_dns_servers = ${dns.servers}`,
      `transport_maps = inline:{ primary.test=smtp:primary.test:${primaryPort} }`,
      'permit_mx_backup_networks = 127.0.0.2/32',
      'address_verify_map = btree:$data_directory/verify',
      'smtpd_relay_restrictions = permit_mynetworks, permit_mx_backup, reject_unauth_destination',
      'smtpd_recipient_restrictions = permit_mynetworks, reject_unverified_recipient, permit_mx_backup, reject_unauth_destination, permit',
      'unverified_recipient_reject_code = 550',
      'backstop_destination_probe_interval = 1s',
    ].join('\n') + '\n',
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  console.log(`Backstop demo: configuration in ${dir}, listening on 127.0.0.1:${port}`);
  const server = await startServer(dir, port);
  let sink: Sink | undefined;
  try {
    say('The primary is up. Backstop probes it for each new recipient and caches the answer.');
    sink = await startSink({ host: '127.0.0.2', port: primaryPort, users });
    await session(port, ['alice@primary.test', 'nobody@primary.test', 'x@other.test']);

    say('The verify cache, as `postmap -s` prints it (Postfix format status:probed:updated:text):');
    show('<', (await runCli(['postmap', '-c', dir, '-s', 'btree:data/verify'])).stdout.trim());

    say('The primary goes down. alice is answered from the cache and her mail is queued.');
    await sink.close();
    sink = undefined;
    await session(port, ['alice@primary.test'], 'Subject: while you were out\r\n\r\nHello alice.\r\n');
    await sleep(1500);
    say('`backstop mailq`:');
    show('<', (await runCli(['mailq', '-c', dir])).stdout.trim());

    say('The primary returns. No command: Backstop notices within seconds and delivers.');
    const back = Date.now();
    sink = await startSink({ host: '127.0.0.2', port: primaryPort, users });
    await sink.waitFor(1, 30_000);
    console.log(`   delivered ${((Date.now() - back) / 1000).toFixed(1)} s after the primary returned`);
    say('`backstop mailq`:');
    show('<', (await runCli(['mailq', '-c', dir])).stdout.trim());

    say('What Backstop logged:');
    console.log(server.log().split('\n').filter((l) => / backstop\/(smtpd|smtp|qmgr|verify|cleanup)\[/.test(l)).map((l) => '   ' + l).join('\n'));
  } finally {
    await server.stop();
    await sink?.close();
    await dns.close();
    server.cleanup();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
