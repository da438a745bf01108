// smtpd's counters (in this process's registry, as a worker keeps them): a connection, a message
// answered 250, a STARTTLS session (direction="in"). The rejects by restriction are in
// test/smtpd/check/decided.test.ts and, summed over workers, test/integration/operate.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeTestCert } from '../helpers/sink.js';
import { startHarness } from './harness.js';
import { registry } from '../../src/observe/index.js';

async function value(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return v?.value ?? 0;
}

test('connections, accepted messages and TLS sessions are counted', async () => {
  const cert = makeTestCert();
  const keyFile = cert.certFile.replace(/cert\.pem$/, 'key.pem');
  const h = await startHarness({ mainCf: `smtpd_tls_security_level = may\nsmtpd_tls_cert_file = ${cert.certFile}\nsmtpd_tls_key_file = ${keyFile}\n` });
  try {
    const before = { conn: await value('backstop_smtpd_connections_total'), acc: await value('backstop_smtpd_messages_accepted_total'), tls: await value('backstop_tls_sessions_total', { direction: 'in' }) };
    const c = await h.ehlo();
    await c.cmd('STARTTLS');
    await c.startTls(cert.cert);
    await c.cmd('EHLO client.test');
    assert.equal((await c.cmd('MAIL FROM:<a@b.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<u@p.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write('x\r\n.\r\n');
    assert.match((await c.read()).text, /^250 /);
    await c.cmd('QUIT');
    assert.equal(await value('backstop_smtpd_connections_total') - before.conn, 1);
    assert.equal(await value('backstop_smtpd_messages_accepted_total') - before.acc, 1);
    assert.equal(await value('backstop_tls_sessions_total', { direction: 'in' }) - before.tls, 1);
  } finally {
    await h.stop();
    cert.remove();
  }
});
