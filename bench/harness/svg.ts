// A tiny dependency-free SVG line chart (for scenario 4's "messages delivered over time").
// Trusts its inputs to be finite numbers; escapes every text it writes.

export interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
  dashed?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Vertical markers, e.g. [{ x: 60, label: 'postqueue -f' }]. */
  markers?: Array<{ x: number; label: string; color?: string }>;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A "nice" step (1, 2, 5 × 10^k) giving about `n` ticks over `span`. */
function step(span: number, n: number): number {
  const raw = span / Math.max(1, n);
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

export function lineChart(series: Series[], o: ChartOptions): string {
  const W = o.width ?? 720, H = o.height ?? 360;
  const L = 70, R = 20, T = 40, B = 50;
  const pts = series.flatMap((s) => s.points);
  const xMax = Math.max(1, ...pts.map((p) => p[0]), ...(o.markers ?? []).map((m) => m.x));
  const yMax = Math.max(1, ...pts.map((p) => p[1]));
  const xs = step(xMax, 8), ys = step(yMax, 5);
  const X1 = Math.ceil(xMax / xs) * xs, Y1 = Math.ceil(yMax / ys) * ys;
  const px = (x: number) => L + (x / X1) * (W - L - R);
  const py = (y: number) => H - B - (y / Y1) * (H - T - B);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(o.title)}</text>`);
  for (let x = 0; x <= X1 + 1e-9; x += xs) {
    out.push(`<line x1="${px(x).toFixed(1)}" y1="${T}" x2="${px(x).toFixed(1)}" y2="${H - B}" stroke="#eee"/>`);
    out.push(`<text x="${px(x).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${+x.toFixed(6)}</text>`);
  }
  for (let y = 0; y <= Y1 + 1e-9; y += ys) {
    out.push(`<line x1="${L}" y1="${py(y).toFixed(1)}" x2="${W - R}" y2="${py(y).toFixed(1)}" stroke="#eee"/>`);
    out.push(`<text x="${L - 6}" y="${(py(y) + 4).toFixed(1)}" text-anchor="end">${+y.toFixed(6)}</text>`);
  }
  out.push(`<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  for (const m of o.markers ?? []) {
    out.push(`<line x1="${px(m.x).toFixed(1)}" y1="${T}" x2="${px(m.x).toFixed(1)}" y2="${H - B}" stroke="${m.color ?? '#999'}" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${(px(m.x) + 4).toFixed(1)}" y="${H - B - 8}" fill="${m.color ?? '#666'}">${esc(m.label)}</text>`);
  }
  series.forEach((s, i) => {
    if (s.points.length) {
      const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${px(p[0]).toFixed(1)} ${py(p[1]).toFixed(1)}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    }
    const ly = T + 8 + i * 16;
    out.push(`<line x1="${W - R - 230}" y1="${ly + 16}" x2="${W - R - 210}" y2="${ly + 16}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${W - R - 204}" y="${ly + 20}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Thins a series to at most n points (keeps the first and last), for a small file. */
export function thin(points: Array<[number, number]>, n = 200): Array<[number, number]> {
  if (points.length <= n) return points;
  const out: Array<[number, number]> = [];
  const every = (points.length - 1) / (n - 1);
  for (let i = 0; i < n; i++) out.push(points[Math.round(i * every)]);
  return out;
}
