// The compare harness's lag measurements: the shared workload's lag probe (lag-client.mjs), the
// replication lag itself joined from the client's and the reader's monotonic clocks, and their
// aggregation over the rounds.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kv, run } from '../lib/proc.mjs';
import { median, percentile } from '../lib/stats.mjs';

const LAG_CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'lag-client.mjs');
/** sessions.readOnlyFilter of the lag cluster: the counter app's read endpoint. */
export const READ_ONLY = '^/app/read$';
/** The lag probe's side clusters (keys of its result) and how the report names them. */
export const LAG_SIDES = [
  [
    'handover',
    '/app/read not declared read-only (n2 takes the session over from n1 before it reads, n1 takes it back for the next write; same probe)',
  ],
  ['two', '2 nodes, /app/read read-only (the same probe without a third node to wake on each write)'],
  ['none', "ownership none (Tomcat's behaviour: n2 reads its replica at once, no hand-over; same probe)"],
  [
    'map',
    'the replication floor: 3 Map session servers, each pushing every change to the others and nothing more (map-peers.mjs; same probe)',
  ],
];

let lagSeq = 0;

/**
 * The shared workload's lag probe (mirrored by lag-client.mjs): write on `writePort`, read on
 * `readPort` at once, 1000 probes after --warmup seconds of the same probes (as wrk warms up a
 * row: the client and the servers are past their JIT compilation); logged as `what`. With
 * `reader` (the server behind `readPort`, started with visibleLog), also the replication lag
 * itself: see {@link visibility}.
 */
export async function lagProbe({ warmupS, log }, writePort, readPort, cookies, what, reader) {
  const out = `${cookies}.${lagSeq++}.writes.json`;
  const argv = [LAG_CLIENT, '--write-port', writePort, '--read-port', readPort, '--cookies', cookies];
  argv.push('--n', 1000, '--warmup-ms', warmupS * 1000, '--out', out);
  const r = await run(process.execPath, argv, 120_000 + warmupS * 1000);
  if (r.code !== 0) throw new Error(`lag-client.mjs failed (${r.code}): ${r.stdout} ${r.stderr}`.trim());
  const line = r.stdout.trim().split('\n').pop();
  const lag = kv(line);
  let visible;
  let visibleCold;
  if (reader) {
    const { writes, cold } = JSON.parse(readFileSync(out, 'utf8'));
    const applied = (await reader.call('visible')).log;
    visible = visibility(writes, applied);
    if (cold.length > 0) visibleCold = visibility(cold, applied);
  }
  log(`lag ${what}: ${line}${visibleText(visible, visibleCold)}`);
  return {
    probes: lag.probes,
    fresh: lag.fresh,
    stale: lag.stale,
    errors: lag.errors,
    stalePct: (100 * lag.stale) / lag.probes,
    p50: lag.read_after_write_p50_ms,
    p99: lag.p99_ms,
    line,
    ...(visible ? { visible } : {}),
    ...(visibleCold ? { visibleCold } : {}),
  };
}

/**
 * Replication lag as the time until visible: for each acknowledged write, when the reader applied
 * that count (its listener's clock) minus when the client had the writer's answer (the client's
 * clock; both CLOCK_MONOTONIC of this host). At or below 0 the value was on the reader before the
 * client could ask for it; such probes count as 0. No HTTP read on the reader is involved, so the
 * machine's wake-up noise for a second request does not enter it (it does for the read probe).
 */
export function visibility(writes, applied) {
  // Session ids without their route suffix (the Map server's bodies carry `<id>.<route>`).
  const key = (id, count) => `${String(id).split('.')[0]} ${count}`;
  const at = new Map(applied.map(([id, count, ns]) => [key(id, count), ns]));
  const lags = [];
  let ahead = 0;
  let missing = 0;
  for (const [id, count, ns] of writes) {
    const t = at.get(key(id, count));
    if (t === undefined) {
      missing++;
      continue;
    }
    const ms = (t - ns) / 1e6;
    if (ms <= 0) ahead++;
    lags.push(Math.max(0, ms));
  }
  const f = (x) => +x.toFixed(3);
  return {
    writes: writes.length,
    missing,
    aheadPct: +((100 * ahead) / Math.max(1, lags.length)).toFixed(1),
    p50: f(percentile(lags, 50)),
    p99: f(percentile(lags, 99)),
    max: f(percentile(lags, 100)),
  };
}

/**
 * Time until visible over the rounds (`key`: visible, or visibleCold for the warm-up's first
 * probes): medians of each round's p50/p99, the worst max, every never-seen.
 */
export function visibleOf(list, key = 'visible') {
  const v = list.map((l) => l[key]).filter(Boolean);
  if (v.length === 0) return undefined;
  return {
    p50: median(v.map((x) => x.p50)),
    p99: median(v.map((x) => x.p99)),
    max: Math.max(...v.map((x) => x.max)),
    aheadPct: median(v.map((x) => x.aheadPct)),
    missing: v.reduce((a, x) => a + x.missing, 0),
    writes: v.reduce((a, x) => a + x.writes, 0),
    rounds: v.map((x) => `${x.p50}/${x.p99}`),
  };
}
/**
 * A {@link visibility} result (or {@link visibleOf} rounds) as a clause of the log and the report;
 * `cold`, the same for the warm-up's first probes, as a clause of its own.
 */
export const visibleText = (v, cold) =>
  v === undefined
    ? ''
    : `; visible on n2 after the client had n1's answer: p50 ${v.p50} ms, p99 ${v.p99} ms (max ${v.max} ms; ${v.aheadPct} % applied before the answer reached the client; ${v.missing} of ${v.writes} writes never seen${v.rounds?.length > 1 ? `; rounds p50/p99 ${v.rounds.join(', ')}` : ''})${cold === undefined ? '' : `; cold (the warm-up's first ${Math.round(cold.writes / Math.max(1, cold.rounds?.length ?? 1))} probes, every process just started): p50 ${cold.p50} ms, p99 ${cold.p99} ms${cold.rounds?.length > 1 ? ` (rounds ${cold.rounds.join(', ')})` : ''}`}`;

const pickMedian = (list, key) =>
  list.length === 0 ? undefined : [...list].sort((a, b) => key(a) - key(b))[(list.length - 1) >> 1];

/**
 * The lag result of a run from its rounds: the median round by p99 (with every round's p50/p99),
 * the worst staleness and errors, the visibility over the rounds, the wake floor's medians, and
 * each side cluster's own median round.
 */
export function aggregateLag(rounds) {
  const lag = { ...pickMedian(rounds, (l) => l.p99), rounds: rounds.map((l) => [l.p50, l.p99]) };
  const stalest = [...rounds].sort((a, b) => b.stalePct - a.stalePct)[0];
  lag.stale = stalest.stale;
  lag.stalePct = stalest.stalePct;
  lag.errors = Math.max(...rounds.map((l) => l.errors));
  lag.visible = visibleOf(rounds);
  lag.visibleCold = visibleOf(rounds, 'visibleCold');
  const wakes = rounds.map((l) => l.wake).filter(Boolean);
  if (wakes.length) lag.wake = { p50: median(wakes.map((w) => w.p50_ms)), p99: median(wakes.map((w) => w.p99_ms)) };
  for (const [key] of LAG_SIDES) {
    const list = rounds.map((l) => l[key]).filter(Boolean);
    if (list.length === 0) continue;
    lag[key] = {
      ...pickMedian(list, (l) => l.p99),
      rounds: list.map((l) => `${l.p50}/${l.p99}`),
      worstStalePct: Math.max(...list.map((l) => l.stalePct)),
      visible: visibleOf(list),
      visibleCold: visibleOf(list, 'visibleCold'),
    };
  }
  return lag;
}

/** The median round of a list by `key`. */
export { pickMedian };
