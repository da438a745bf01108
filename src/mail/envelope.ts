// The envelope of one message as smtpd hands it to the queue and the queue hands it to delivery.

export type DsnNotify = 'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY';

export interface EnvelopeRecipient {
  /** The address as given in RCPT TO, without brackets. */
  address: string;
  /** DSN NOTIFY= values; undefined when the client gave none (Postfix default: FAILURE,DELAY). */
  notify?: DsnNotify[];
  /** DSN ORCPT=, e.g. "rfc822;user@example.com". */
  orcpt?: string;
}

export interface Envelope {
  /** MAIL FROM address; '' is the null sender. */
  sender: string;
  recipients: EnvelopeRecipient[];
  /** DSN RET= (FULL | HDRS). */
  ret?: 'FULL' | 'HDRS';
  /** DSN ENVID=. */
  envid?: string;
  /** BODY= (7BIT | 8BITMIME | BINARYMIME). */
  body?: string;
  smtputf8?: boolean;
  client: {
    /** Verified client host name, or 'unknown'. */
    name: string;
    address: string;
    helo: string;
    protocol: 'SMTP' | 'ESMTP' | 'ESMTPS' | 'ESMTPA' | 'ESMTPSA';
    saslUsername?: string;
  };
  /** Milliseconds since the epoch when the message arrived. */
  arrivalTime: number;
}
