// The request attributes of Postfix's policy delegation protocol (SMTPD_POLICY_README, up to
// Postfix 3.7), built from the session the restriction engine sees. Unknown values are sent
// empty (strings) or 0 (numbers), as Postfix does. Pure function.

import type { SessionInfo } from '../smtpd/check/types.js';

/** What a policy request needs to know about the session: a subset of smtpd's SessionInfo. */
export type PolicySession = Pick<
  SessionInfo,
  | 'stage' | 'protocol' | 'helo' | 'queueId' | 'sender' | 'recipient' | 'recipientCount'
  | 'clientAddress' | 'clientPort' | 'clientName' | 'reverseClientName' | 'instance' | 'saslMethod'
  | 'saslUsername' | 'saslSender' | 'size' | 'etrnDomain' | 'serverAddress' | 'serverPort'
  | 'tls' | 'ccertSubject' | 'ccertIssuer' | 'ccertFingerprint' | 'ccertPubkeyFingerprint'
  | 'encryptionProtocol' | 'encryptionCipher' | 'encryptionKeysize' | 'stress'
>;

const STATES: Record<PolicySession['stage'], string> = {
  connect: 'CONNECT', helo: 'EHLO', mail: 'MAIL', rcpt: 'RCPT', data: 'DATA', 'end-of-data': 'END-OF-MESSAGE', etrn: 'ETRN',
};

export function policyAttributes(s: PolicySession): Array<[string, string]> {
  const state = s.stage === 'helo' && s.protocol === 'SMTP' ? 'HELO' : STATES[s.stage];
  const afterData = s.stage === 'data' || s.stage === 'end-of-data';
  // recipient: at RCPT the one being checked; at DATA/END-OF-MESSAGE only with exactly one.
  const recipient = s.stage === 'rcpt' || (afterData && s.recipientCount === 1) ? s.recipient ?? '' : '';
  return [
    ['request', 'smtpd_access_policy'],
    ['protocol_state', state],
    ['protocol_name', s.protocol],
    ['helo_name', s.helo ?? ''],
    ['queue_id', s.queueId ?? ''],
    ['sender', s.sender ?? ''],
    ['recipient', recipient],
    ['recipient_count', String(afterData ? s.recipientCount : 0)],
    ['client_address', s.clientAddress],
    ['client_name', s.clientName || 'unknown'],
    ['reverse_client_name', s.reverseClientName || 'unknown'],
    ['instance', s.instance],
    ['sasl_method', s.saslMethod ?? ''],
    ['sasl_username', s.saslUsername ?? ''],
    ['sasl_sender', s.saslSender ?? ''],
    ['size', String(s.size ?? 0)],
    ['ccert_subject', s.ccertSubject ?? ''],
    ['ccert_issuer', s.ccertIssuer ?? ''],
    ['ccert_fingerprint', s.ccertFingerprint ?? ''],
    ['ccert_pubkey_fingerprint', s.ccertPubkeyFingerprint ?? ''],
    ['encryption_protocol', s.encryptionProtocol ?? ''],
    ['encryption_cipher', s.encryptionCipher ?? ''],
    ['encryption_keysize', String(s.encryptionKeysize ?? 0)],
    ['etrn_domain', s.stage === 'etrn' ? s.etrnDomain ?? '' : ''],
    ['stress', s.stress ? 'yes' : ''],
    ['client_port', String(s.clientPort)],
    ['server_address', s.serverAddress],
    ['server_port', String(s.serverPort)],
  ];
}
