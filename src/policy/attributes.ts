// The request attributes of Postfix's policy delegation protocol (SMTPD_POLICY_README, up to
// Postfix 3.7), built from the session the restriction engine sees. PolicySession, the part of
// the session a request needs, is declared here so that policy never imports smtpd. Unknown
// values are sent empty (strings) or 0 (numbers), as Postfix does. Pure function.

/** The SMTP stage a request is made at (smtpd's restriction stages). */
export type PolicyStage = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'end-of-data' | 'etrn';

/**
 * What a policy request needs to know about the session. Declared here, by the consumer, so that
 * policy never imports smtpd: smtpd's SessionInfo extends it.
 */
export interface PolicySession {
  stage: PolicyStage;
  protocol: 'SMTP' | 'ESMTP';
  helo?: string;
  queueId?: string;
  /** MAIL FROM address ('' = null sender), once given. */
  sender?: string;
  /** The recipient being checked (rcpt stage) or the last one accepted. */
  recipient?: string;
  recipientCount: number;
  clientAddress: string;
  clientPort: number;
  /** Verified (forward-confirmed) client name, or 'unknown'. */
  clientName: string;
  /** Unverified reverse name (PTR), or 'unknown'. */
  reverseClientName: string;
  /** A stable id of the session (`instance`). */
  instance: string;
  saslMethod?: string;
  saslUsername?: string;
  /** SASL sender (MAIL FROM AUTH=). */
  saslSender?: string;
  /** SIZE= from MAIL FROM, or the message size at end-of-data. */
  size?: number;
  /** ETRN argument at the etrn stage. */
  etrnDomain?: string;
  serverAddress: string;
  serverPort: number;
  tls: boolean;
  /** TLS details, when known. */
  ccertSubject?: string;
  ccertIssuer?: string;
  ccertFingerprint?: string;
  ccertPubkeyFingerprint?: string;
  encryptionProtocol?: string;
  encryptionCipher?: string;
  encryptionKeysize?: number;
  stress?: boolean;
}

const STATES: Record<PolicyStage, string> = {
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
