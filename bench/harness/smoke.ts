// Smoke check of the harness (not a benchmark; run-all skips bench/harness): a DNS sandbox, a
// Postfix primary with mailboxes on 127.0.0.2:25 and a Postfix backup MX on 127.0.0.1:2525.
// Mail accepted by the backup for a known user lands in the primary's mailbox; an unknown user
// gets the primary's 550 5.1.1 through the verify probe. Run: npx tsx bench/harness/smoke.ts
import { startDnsSandbox } from './sandbox.js';
import { startPostfix, primaryMx, backupMxParams } from './postfix.js';
import { smtpSession } from './smtpclient.js';
import { waitFor } from './proc.js';

const zone = {
  'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] as Array<[number, string]> },
  'mx1.primary.test': { A: ['127.0.0.2'] },
  'mx2.backup.test': { A: ['127.0.0.1'] },
};
const dns = await startDnsSandbox({ zone, logQueries: true });
const primary = await startPostfix({ name: 'primary', sandbox: dns, services: ['127.0.0.2:25 inet n - n - - smtpd'], ...primaryMx({ hostname: 'mx1.primary.test', domain: 'primary.test', users: ['alice', 'bob'] }) });
const backup = await startPostfix({ name: 'backup', sandbox: dns, meter: true, services: ['127.0.0.1:2525 inet n - n - - smtpd'], main: backupMxParams({ hostname: 'mx2.backup.test', primaryNetworks: '127.0.0.2/32' }) });
try {
  const s = await smtpSession({ host: '127.0.0.1', port: 2525 });
  console.log(s.greeting);
  console.log((await s.command('EHLO client.test')).text.split('\n')[0]);
  console.log((await s.command('MAIL FROM:<sender@client.test>')).text);
  const t0 = performance.now();
  console.log((await s.command('RCPT TO:<alice@primary.test>')).text, `${(performance.now() - t0).toFixed(0)} ms`);
  console.log((await s.command('RCPT TO:<nobody@primary.test>')).text);
  console.log((await s.command('DATA')).text);
  console.log((await s.command('Subject: hi\r\n\r\nhello alice\r\n.')).text);
  await s.quit();
  await waitFor(() => primary.mailbox('alice@primary.test').length === 1, 20_000, 'delivery to alice');
  console.log('mailbox:', primary.mailbox('alice@primary.test')[0].split('\n').slice(-3).join('|'));
  console.log('backup cpu', backup.meter!.cpuSeconds().toFixed(2), 's; memory', backup.meter!.memory());
  console.log(dns.queryLog().split('\n').filter((l) => l.includes('query[')).length, 'DNS queries');
} finally {
  await backup.stop(); backup.cleanup();
  await primary.stop(); primary.cleanup();
  await dns.stop();
}
