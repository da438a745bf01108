// Fixtures of the seed's configuration (tutorial 000_a5c2b4a871e87311) rewritten to loopback:
// main.cf text, table files, DNS zone, and a quota-status-like policy server. Shared by the seed
// tests and bench/restrictions-rcpt.ts.

import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileSource } from '../../../src/tables/index.js';

export function seedMainCf(dir: string, policyPort: number, relayLine: boolean): string {
  return `
mydestination = mx1.tachtler.net
mynetworks = 127.0.0.254/32
permit_mx_backup_networks = 127.0.0.2/32
unverified_recipient_reject_code = 577

smtpd_recipient_restrictions =
#          Postmaster, abuse und andere aufgaben- oder funktionsgebundene
#          eMail-Adressen (Role-Accounts) whitelisten
           check_recipient_access btree:${dir}/access_recipient-rfc

#          Black- und Whitelisting       (Kapitel 8.2.3 White- und Blacklisting)
           check_client_access cidr:${dir}/access_client
           check_helo_access btree:${dir}/access_helo
           check_sender_access btree:${dir}/access_sender
           check_recipient_access btree:${dir}/access_recipient

#          Unsere eigenen Nutzer zulassen-/erlauben
           permit_sasl_authenticated
           permit_mynetworks

#          RBL überprüfen               (Kapitel 10.11 Realtime Blackhole Lists)
           reject_rbl_client zen.spamhaus.org
           reject_rbl_client ix.dnsbl.manitu.net
           reject_rbl_client bl.spamcop.net
           reject_rhsbl_client multi.uribl.com

#          Dynamische Prüfung auf existente Relay-Empfänger
           reject_unverified_recipient

#          Backupserver (MX) erlauben
           permit_mx_backup

#          alles andere an relaying verbieten
           reject_unauth_destination

#          Quota-Status-Policy-Daemon am Dovecot-Backend-System
           check_policy_service inet:127.0.0.1:${policyPort}

#          Zu guter Letzt alles durchlassen, was bis jetzt noch nicht
#          beanstandet wurde
           permit

smtpd_relay_restrictions =
# Unsere eigenen Nutzer zulassen-/erlauben
           permit_sasl_authenticated
           permit_mynetworks
# Backupserver (MX) erlauben
${relayLine ? '' : '#'}           permit_mx_backup
# alles andere an relaying verbieten, d.h. mit einem finalen error 550 abweisen
           reject_unauth_destination
`;
}

export function writeSeedTables(dir: string): void {
  const files: Record<string, string> = {
    'access_recipient-rfc': 'postmaster@ OK\nabuse@ OK\n',
    access_client: '127.0.0.66/32 REJECT You are blacklisted\n',
    access_helo: 'localhost REJECT You are not localhost\n',
    access_sender: 'spam@bad.example REJECT\n',
    access_recipient: 'closed@nausch.org REJECT Mailbox closed\n',
  };
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(join(dir, name), text);
    if (name !== 'access_client') compileSource(join(dir, name), () => {});
  }
}

export const SEED_ZONE = {
  'nausch.org': { MX: [[10, 'mx1.nausch.org'], [20, 'mx1.tachtler.net']] as Array<[number, string]> },
  'mx1.nausch.org': { A: ['127.0.0.2'] },
  'mx1.tachtler.net': { A: ['127.0.0.1'] },
  'other.test': { MX: [[10, 'mx.other.test']] as Array<[number, string]> },
  'mx.other.test': { A: ['127.0.0.3'] },
  'client.test': { A: ['127.0.0.1'] },
  '2.0.0.127.zen.spamhaus.org': { A: ['127.0.0.2'], TXT: ['https://www.spamhaus.org/query/ip/127.0.0.2'] },
  '4.0.0.127.bl.spamcop.net': { A: ['127.0.0.2'] },
  'spam.example.multi.uribl.com': { A: ['127.0.0.2'] },
};

/** A quota-status-like policy server: answers `action=OK` and counts requests. */
export async function startPolicy(): Promise<{ port: number; requests: number; close(): Promise<void> }> {
  const state = { requests: 0 };
  const server = net.createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      while (buf.includes('\n\n')) {
        buf = buf.slice(buf.indexOf('\n\n') + 2);
        state.requests++;
        sock.write('action=OK\n\n');
      }
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get requests() { return state.requests; },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

