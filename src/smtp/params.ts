// The main.cf parameters the SMTP client reads, with Postfix's names, defaults and types
// (postconf(5), 3.7). The master turns them into DeliveryOptions; postconf -d prints them.

import type { ParamDef } from '../config/types.js';

const m = 'smtp';
export const SMTP_PARAMS: ParamDef[] = [
  { name: 'relayhost', default: '', type: 'string', module: m },
  { name: 'transport_maps', default: '', type: 'maps', module: m },
  { name: 'inet_protocols', default: 'all', type: 'list', module: m },
  { name: 'smtp_helo_name', default: '$myhostname', type: 'string', module: m },
  { name: 'smtp_bind_address', default: '', type: 'string', module: m },
  { name: 'smtp_tls_security_level', default: '', type: 'string', oneOf: ['', 'none', 'may', 'encrypt', 'verify', 'secure'], module: m },
  { name: 'smtp_tls_CAfile', default: '', type: 'string', module: m },
  { name: 'smtp_randomize_addresses', default: 'yes', type: 'bool', module: m },
  { name: 'smtp_mx_address_limit', default: '5', type: 'int', min: 0, module: m },
  { name: 'smtp_mx_session_limit', default: '2', type: 'int', min: 0, module: m },
  { name: 'smtp_connect_timeout', default: '30s', type: 'time', unit: 's', min: 0, module: m },
  { name: 'smtp_helo_timeout', default: '300s', type: 'time', unit: 's', min: 1, module: m },
  { name: 'smtp_starttls_timeout', default: '300s', type: 'time', unit: 's', min: 1, module: m },
  { name: 'smtp_mail_timeout', default: '300s', type: 'time', unit: 's', min: 1, module: m },
  { name: 'smtp_rcpt_timeout', default: '300s', type: 'time', unit: 's', min: 1, module: m },
  { name: 'smtp_data_init_timeout', default: '120s', type: 'time', unit: 's', min: 1, module: m },
  { name: 'smtp_data_xfer_timeout', default: '180s', type: 'time', unit: 's', min: 1, module: m },
  { name: 'smtp_data_done_timeout', default: '600s', type: 'time', unit: 's', min: 1, module: m },
  { name: 'smtp_rset_timeout', default: '20s', type: 'time', unit: 's', min: 1, module: m },
  { name: 'smtp_quit_timeout', default: '300s', type: 'time', unit: 's', min: 1, module: m },
  { name: 'smtp_connection_cache_time_limit', default: '2s', type: 'time', unit: 's', min: 1, module: m },
  { name: 'smtp_connection_reuse_time_limit', default: '300s', type: 'time', unit: 's', min: 1, module: m },
  { name: 'smtp_connection_reuse_count_limit', default: '0', type: 'int', min: 0, module: m },
  { name: 'delay_logging_resolution_limit', default: '2', type: 'int', min: 0, max: 6, module: m },
];
