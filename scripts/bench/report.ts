// Renders the bench report as Markdown: the table, the ratios, and the goal lines (each: measured, reached).
export interface Row {
  scenario: string;
  concurrency: number;
  requests: number;
  errors: number;
  statuses: Record<string, number>;
  rps: number;
  p50: number;
  p99: number;
  durationMs: number;
  cpuPerRequest: Record<string, number>;
  handshakesPerRequest: number;
  /** Relay paths: Redis commands per request (INFO commandstats, scripts' inner commands included), and by command. */
  redisCommandsPerRequest?: number;
  redisCommands?: Record<string, number>;
  /** Relay paths: forwards per batch job (the api's forward_batch_size histogram). */
  forwardsPerBatch?: number;
}

export interface BenchReport {
  when: string;
  quick: boolean;
  machine: { cpus: number; model: string; memoryGiB: number; node: string; stealPercent: number };
  durationMs: number;
  /** Slices each case's measurement is split into, the paths taking turns. */
  rounds: number;
  rows: Row[];
  async: {
    concurrency: number;
    enqueueRps: number;
    accepted: number;
    completionRps: number;
    p50: number;
    p99: number;
    redisCommandsPerJob: number;
    cpuPerJob: Record<string, number>;
  };
  /** rps: concurrency ÷ mean latency (Little's law); answersPerSecond: answers ÷ elapsed, tail included. */
  slowTarget: { concurrency: number; latencyMs: number; rps: number; ideal: number; ratio: number; meanMs: number; p50: number; p99: number; answersPerSecond: number };
  memory: Record<string, number>;
  nginx: boolean;
}

const f = (n: number | undefined, digits = 0): string => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(digits));

export function renderMarkdown(r: BenchReport): string {
  const find = (scenario: string, c: number): Row | undefined => r.rows.find((x) => x.scenario === scenario && x.concurrency === c);
  const lines: string[] = [];
  lines.push(`Machine: ${r.machine.cpus} × ${r.machine.model}, ${r.machine.memoryGiB.toFixed(0)} GiB, Node ${r.machine.node}; ` +
    `CPU steal during the run ${r.machine.stealPercent.toFixed(1)} %; ${r.durationMs} ms per case${r.rounds > 1 ? ` in ${r.rounds} slices, the paths taking turns` : ''}${r.quick ? ' (--quick)' : ''}; ` +
    'load generator, target and relay share the same cores.', '');
  lines.push('| path | concurrency | req/s | p50 ms | p99 ms | errors | CPU ms/req (per process) | Redis cmd/req | forwards/batch | TLS handshakes/req |');
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |');
  for (const row of r.rows) {
    const cpu = Object.entries(row.cpuPerRequest).map(([k, v]) => `${k} ${f(v, 3)}`).join(', ');
    lines.push(`| ${row.scenario} | ${row.concurrency} | ${f(row.rps)} | ${f(row.p50, 2)} | ${f(row.p99, 2)} | ${row.errors} | ${cpu} | ${f(row.redisCommandsPerRequest, 1)} | ${f(row.forwardsPerBatch, 1)} | ${f(row.handshakesPerRequest, 4)} |`);
  }
  const asyncCpu = Object.entries(r.async.cpuPerJob).map(([k, v]) => `${k} ${f(v, 3)}`).join(', ');
  lines.push('', `Async path (c=${r.async.concurrency}): enqueue ${f(r.async.enqueueRps)} req/s (202, p50 ${f(r.async.p50, 2)} ms), completion ${f(r.async.completionRps)} jobs/s; ` +
    `${f(r.async.redisCommandsPerJob, 1)} Redis commands and CPU ms ${asyncCpu} per job.`);
  lines.push(
    `Slow target (${r.slowTarget.latencyMs} ms, c=${r.slowTarget.concurrency}): mean latency ${r.slowTarget.meanMs.toFixed(1)} ms (p50 ${r.slowTarget.p50.toFixed(1)}, p99 ${r.slowTarget.p99.toFixed(1)}), so ${f(r.slowTarget.rps)} req/s (concurrency ÷ mean latency) = ${(r.slowTarget.ratio * 100).toFixed(1)} % of ${f(r.slowTarget.ideal)}; answers ÷ elapsed time, the drain tail included, ${f(r.slowTarget.answersPerSecond)} req/s.`,
  );
  lines.push(`Memory: ${r.memory['origins']} origins + ${r.memory['certificates']} certificates → +${f(r.memory['heapAndExternalMB'], 1)} MB heap and external, +${f(r.memory['rssMB'], 1)} MB RSS ` +
    `(${f(r.memory['breakers'])} breakers kept for healthy origins); worst case, every origin failing once: ${f(r.memory['failingBreakers'])} breakers, ` +
    `+${f(r.memory['failingBreakersMB'], 1)} MB heap, +${f(r.memory['failingRssMB'], 1)} MB RSS more.`, '');

  const relay64 = find('relay-sync', 64) ?? find('relay-sync', 32);
  const inline64 = find('inline', 64) ?? find('inline', 32);
  const relay1 = find('relay-sync', 1);
  const direct1 = find('direct', 1);
  const steady = r.rows.filter((x) => x.scenario === 'relay-sync' && x.concurrency >= 32);
  const relayCpu = (row: Row | undefined): number => (row === undefined ? Number.NaN : ['api', 'worker', 'redis'].reduce((s, k) => s + (row.cpuPerRequest[k] ?? 0), 0));
  const at = `c=${relay64?.concurrency ?? 64}`;
  const targets: Array<[string, string, boolean]> = [
    [`total CPU per forward (api + worker + Redis) at ${at} ≤ 0.6 ms`, `${f(relayCpu(relay64), 3)} ms`, relayCpu(relay64) <= 0.6],
    [`Redis CPU per forward at ${at} ≤ 0.05 ms`, `${f(relay64?.cpuPerRequest['redis'], 3)} ms`, (relay64?.cpuPerRequest['redis'] ?? Infinity) <= 0.05],
    [`Redis commands per forward at ${at} ≤ 12`, f(relay64?.redisCommandsPerRequest, 1), (relay64?.redisCommandsPerRequest ?? Infinity) <= 12],
    [`relay-sync ≥ 0.5× inline at ${at}`, `${f(relay64 && inline64 ? relay64.rps / inline64.rps : Number.NaN, 3)}×`, !!relay64 && !!inline64 && relay64.rps >= 0.5 * inline64.rps],
    ['lone caller (c=1): added p50 over direct ≤ 2 ms', `${f(relay1 && direct1 ? relay1.p50 - direct1.p50 : Number.NaN, 2)} ms`, !!relay1 && !!direct1 && relay1.p50 - direct1.p50 <= 2],
    ['lone caller (c=1): CPU per forward (api + worker + Redis) ≤ 2 ms', `${f(relayCpu(relay1), 3)} ms`, relayCpu(relay1) <= 2],
    [`async at c=${r.async.concurrency}: accept ≥ 5,000 jobs/s`, `${f(r.async.enqueueRps)} jobs/s`, r.async.enqueueRps >= 5000],
    [`async at c=${r.async.concurrency}: complete ≥ 3,000 jobs/s`, `${f(r.async.completionRps)} jobs/s`, r.async.completionRps >= 3000],
    ['200 ms target at c=64: ≥ 95 % of concurrency ÷ latency', `${(r.slowTarget.ratio * 100).toFixed(1)} % (mean latency ${r.slowTarget.meanMs.toFixed(1)} ms)`, r.slowTarget.ratio >= 0.95],
    ['TLS handshakes per request ≤ 0.001 (steady state)', f(Math.max(...steady.map((x) => x.handshakesPerRequest)), 4), steady.every((x) => x.handshakesPerRequest <= 0.001)],
    ['10,000 origins + 1,000 certificates < 50 MB', `${f(r.memory['rssMB'], 1)} MB RSS with healthy origins (+${f(r.memory['failingRssMB'], 1)} MB more if all fail)`, (r.memory['rssMB'] ?? Infinity) < 50],
  ];
  lines.push('| target | measured | reached |', '| --- | --- | --- |');
  for (const [name, value, ok] of targets) lines.push(`| ${name} | ${value} | ${ok ? 'yes' : 'no'} |`);
  return `${lines.join('\n')}\n`;
}
