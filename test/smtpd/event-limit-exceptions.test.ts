// smtpd_client_event_limit_exceptions through the real `backstop start`: its default is
// $mynetworks, whatever form mynetworks takes. A cidr: table that lists the client exempts it from
// smtpd_client_connection_count_limit just as a literal network does; a table that does not list
// it leaves the limit in force (421 4.7.0 too many connections).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { talk } from '../helpers/smtp-client.js';
import { freePort, sleep } from '../helpers/net.js';
import { makeConfigDir, startServer } from '../helpers/server.js';

async function secondConnection(table: string): Promise<{ first: string; second: string }> {
  const port = await freePort();
  const dir = makeConfigDir({
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  const tableFile = join(dir, 'mynetworks.cidr');
  writeFileSync(tableFile, table);
  writeFileSync(join(dir, 'main.cf'), [
    'myhostname = mx2.backup.test',
    'mydestination =',
    'inet_interfaces = 127.0.0.1',
    'queue_directory = spool',
    'data_directory = data',
    'address_verify_map =',
    `mynetworks = cidr:${tableFile}`,
    'smtpd_client_connection_count_limit = 1',
    'smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination',
  ].join('\n') + '\n');
  const server = await startServer(dir, port);
  try {
    // startServer's readiness probe was a connection too (counted when it got that far): with
    // several smtpd workers its release reaches the master's anvil over another worker's
    // channel, so give it time to arrive before counting.
    await sleep(500);
    const a = await talk(port);
    const b = await talk(port);
    a.close();
    b.close();
    return { first: a.greeting, second: b.greeting };
  } finally {
    await server.stop();
    server.cleanup();
  }
}

test('mynetworks = cidr:table exempts its clients from the connection count limit', { timeout: 60_000 }, async () => {
  const listed = await secondConnection('127.0.0.0/8 OK\n');
  assert.match(listed.first, /^220 /);
  assert.match(listed.second, /^220 /, 'a client listed in the cidr: table is not limited');

  const unlisted = await secondConnection('192.0.2.0/24 OK\n');
  assert.match(unlisted.first, /^220 /);
  assert.equal(unlisted.second, '421 4.7.0 mx2.backup.test Error: too many connections from 127.0.0.1');
});
