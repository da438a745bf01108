// `backstop status`: the system status (observe's SystemStatus) as one screen of text.

import type { SystemStatus } from '../observe/index.js';

/** 3d 4h, 5h 2m, 7m 3s, 12s. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n < 10 && i ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

function when(ms: number | undefined, now: number): string {
  if (ms === undefined) return 'never';
  if (ms <= now) return `${duration((now - ms) / 1000)} ago`;
  return `in ${duration((ms - now) / 1000)}`;
}

export function formatStatus(st: SystemStatus): string {
  const now = st.generated;
  const out: string[] = [];
  out.push(`Backstop ${st.version}: master pid ${st.master.pid}, up ${duration(st.master.uptime)}`);
  const smtpd = st.workers.filter((w) => w.role === 'smtpd');
  const qmgr = st.workers.filter((w) => w.role === 'qmgr');
  if (st.workers.length) {
    out.push(`workers: ${smtpd.length} smtpd (pids ${smtpd.map((w) => w.pid).join(', ') || '-'}), qmgr pid ${qmgr.map((w) => w.pid).join(', ') || 'none'}`);
  } else out.push('workers: none (backstop_single_process = yes: everything runs in the master)');
  if (st.missing) out.push(`warning: ${st.missing} worker${st.missing === 1 ? '' : 's'} did not answer: their numbers are missing`);
  const q = st.queue;
  if (q) {
    out.push('');
    out.push('queue: ' + Object.entries(q.queues).map(([n, v]) => `${n} ${v.messages}${v.messages ? ` (oldest ${duration(v.oldestAge)})` : ''}`).join(', '));
    out.push(`maximal_queue_lifetime: ${duration(q.maximalQueueLifetime)}`);
    if ('error' in q.disk) out.push(`queue file system ${q.disk.path}: ${q.disk.error}`);
    else out.push(`queue file system ${q.disk.path}: ${bytes(q.disk.freeBytes)} free of ${bytes(q.disk.totalBytes)}`);
    out.push('');
    if (!q.destinations.length) out.push('destinations: no queued mail and no delivery in the last hour');
    for (const d of q.destinations) {
      const reach = d.up === undefined ? 'not tried yet' : `${d.up ? 'reachable' : 'UNREACHABLE'} since ${when(d.since, now)}`;
      out.push(`${d.destination}: ${reach}`);
      const retry = d.nextRetry === undefined ? '' : d.nextRetry === 'flush on return' ? ', flush on return' : `, next retry ${d.nextRetry <= now ? 'now' : when(d.nextRetry, now)}`;
      out.push(`  queued ${d.queued}${d.queued ? `, oldest ${duration(d.oldestAge)} of ${duration(q.maximalQueueLifetime)}` : ''}${retry}`);
      out.push(`  last delivery ${when(d.lastDelivery, now)}`);
      if (d.lastError && d.queued) out.push(`  last error: ${d.lastError}`);
    }
  } else out.push('queue: the queue manager did not answer');
  out.push('');
  const v = st.verify;
  const rate = v.hitRateLastHour === undefined ? 'no lookups' : `hit rate ${(v.hitRateLastHour * 100).toFixed(1)}% (${v.hitsLastHour} hits, ${v.missesLastHour} misses)`;
  out.push(`verify cache: ${v.cacheSize === undefined ? 'size unknown' : `${v.cacheSize} entries`}, last hour ${rate}`);
  const rejects = Object.entries(st.rejectsLastHour).sort((a, b) => b[1] - a[1]);
  out.push(`rejects in the last hour: ${rejects.length ? rejects.map(([r, n]) => `${r} ${n}`).join(', ') : 'none'}`);
  return out.join('\n') + '\n';
}
