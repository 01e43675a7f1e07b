// The bench's chart: req/s and p50 latency by concurrency for every path, as one SVG (two panels, log-scale
// x axis). Written by hand rather than with a charting library: it is 80 lines of SVG text, with no fonts,
// canvas or browser to install on a CI machine.
import type { Row } from './report.ts';

const COLORS: Record<string, string> = { direct: '#555555', inline: '#1f77b4', 'relay-sync': '#d62728', nginx: '#2ca02c' };
const W = 460;
const H = 300;
const M = { left: 64, right: 16, top: 36, bottom: 44 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((x) => x >= v) ?? 10 * p;
}

function panel(rows: Row[], metric: 'rps' | 'p50', title: string, x0: number): string {
  const scenarios = [...new Set(rows.map((r) => r.scenario))];
  const cs = [...new Set(rows.map((r) => r.concurrency))].sort((a, b) => a - b);
  const max = niceMax(Math.max(...rows.map((r) => r[metric]).filter(Number.isFinite)));
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const lx = (c: number): number => x0 + M.left + (cs.length === 1 ? pw / 2 : (cs.indexOf(c) / (cs.length - 1)) * pw);
  const ly = (v: number): number => M.top + ph - (v / max) * ph;
  const out: string[] = [`<text x="${x0 + W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`];
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    out.push(`<line x1="${x0 + M.left}" x2="${x0 + W - M.right}" y1="${ly(v)}" y2="${ly(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${x0 + M.left - 6}" y="${ly(v) + 4}" text-anchor="end" font-size="11">${v >= 100 ? v.toFixed(0) : v.toFixed(1)}</text>`);
  }
  for (const c of cs) out.push(`<text x="${lx(c)}" y="${H - M.bottom + 16}" text-anchor="middle" font-size="11">${c}</text>`);
  out.push(`<text x="${x0 + M.left + pw / 2}" y="${H - 8}" text-anchor="middle" font-size="11">concurrency</text>`);
  for (const s of scenarios) {
    const pts = cs.map((c) => rows.find((r) => r.scenario === s && r.concurrency === c)).filter((r): r is Row => r !== undefined && Number.isFinite(r[metric]));
    const color = COLORS[s] ?? '#9467bd';
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((r) => `${lx(r.concurrency).toFixed(1)},${ly(r[metric]).toFixed(1)}`).join(' ')}"/>`);
    for (const r of pts) out.push(`<circle cx="${lx(r.concurrency).toFixed(1)}" cy="${ly(r[metric]).toFixed(1)}" r="3" fill="${color}"/>`);
  }
  return out.join('\n');
}

export function renderChart(rows: Row[], caption: string): string {
  const scenarios = [...new Set(rows.map((r) => r.scenario))];
  const legend = scenarios
    .map((s, i) => `<rect x="${20 + i * 120}" y="${H + 8}" width="12" height="12" fill="${COLORS[s] ?? '#9467bd'}"/><text x="${36 + i * 120}" y="${H + 18}" font-size="12">${esc(s)}</text>`)
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H + 52}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
${panel(rows, 'rps', 'requests per second', 0)}
${panel(rows, 'p50', 'p50 latency (ms)', W)}
${legend}
<text x="20" y="${H + 42}" font-size="11" fill="#444">${esc(caption)}</text>
</svg>
`;
}
