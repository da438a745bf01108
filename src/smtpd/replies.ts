// The fixed replies smtpd's command handlers share, worded as Postfix's smtpd words them (tests
// and clients match these texts). Replies used by one handler only stay in that handler.
// Pure data.

import { reply } from '../mail/index.js';

export const R = {
  ok: reply(250, '2.0.0', 'Ok'),
  bye: reply(221, '2.0.0', 'Bye'),
  sync: reply(554, '5.5.0', 'Error: SMTP protocol synchronization'),
  unknown: reply(500, '5.5.2', 'Error: command not recognized'),
  breakRules: reply(221, '2.7.0', 'Error: I can break rules, too. Goodbye.'),
  badSyntax: reply(500, '5.5.2', 'Error: bad syntax'),
  badUtf8: reply(500, '5.5.2', 'Error: bad UTF-8 syntax'),
  declareSmtputf8: reply(553, '5.6.7', 'Must declare SMTPUTF8 to send unicode address'),
  needHelo: reply(503, '5.5.1', 'Error: send HELO/EHLO first'),
  needMail: reply(503, '5.5.1', 'Error: need MAIL command'),
  needRcpt: reply(503, '5.5.1', 'Error: need RCPT command'),
  nested: reply(503, '5.5.1', 'Error: nested MAIL command'),
  starttlsFirst: reply(530, '5.7.0', 'Must issue a STARTTLS command first'),
  sizeLimit: reply(552, '5.3.4', 'Message size exceeds fixed limit'),
  fileTooBig: reply(552, '5.3.4', 'Error: message file too big'),
  noValidRcpts: reply(554, '5.5.1', 'Error: no valid recipients'),
  tooManyRcpts: reply(452, '4.5.3', 'Error: too many recipients'),
};
