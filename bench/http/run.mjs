// HTTP benchmark: the shared counter workload (../shared/workload) against clowder nodes, with
// and without replication, side by side in one run.
//
//   npm run bench:http                        (builds, then runs everything: about 5-6 minutes)
//   node bench/http/run.mjs --quick           (after a build: 1 repetition, 5 s wrk runs)
//   node bench/http/run.mjs --only=rows       (or transfer, memory, or a list: --only=rows,memory)
//   node bench/http/run.mjs --rows=off,async1 --reps=5
//
// Every node is a child process (bench/http/node.mjs) running the counter app
// (examples/counter/app.mjs at /app) in a clowder node; all traffic stays on 127.0.0.1, wrk always
// loads node A. Rows (ids for --rows):
//   map     calibration, not clowder: the same app behind a hand-written Map session (map-node.mjs)
//   off     replication off: A alone (no members)
//   async1  asynchronous replication to one peer (A+B)
//   async2  asynchronous replication to two peers (A+B+C)
//   sync1   synchronous replication to one peer (A+B, sendOptions "sync")
//   async1-mac, async1-aes   async1 with a cluster key: every frame authenticated (MAC only), or
//           also encrypted (AES-256-GCM, the default with a key); ratios to async1: what the key
//           costs on this workload (bench/channel gives the cost at the channel's own saturation)
//   off-c1, async1-c1   off and async1 with one connection (one request at a time: nothing
//           queues): the latency replication adds, without the queueing that 64 connections on a
//           saturated node add to every row (even 4 connections keep A busy); ratios to off-c1
//   off-paced, async1-paced   off and async1 with 64 connections held to about --paced-load (0.5)
//           of the off row's req/s of the same repetition (wrk's delay(): each connection waits
//           64 / rate between requests): the p99 replication adds at a load A can carry, which is
//           how a production node runs; ratios to off-paced
//   map-paced, map1-paced   calibration at the same paced load: the Map session alone, and pushing
//           each change to one peer (bench/lib/map-peers.mjs): the p99 the least possible
//           replication adds on this machine; ratios to map-paced
// Each repetition runs every row once, in that order, on fresh nodes: create --sessions sessions
// (client.mjs mksessions), a wrk warm-up, sumcounts, the measured wrk run, sumcounts (lost
// increments = requests - counted), the A->B lag probe (async1, sync1), a replica check (every
// node's sum of counts equals A's), stop. CPU time is utime+stime of every node process from
// /proc/<pid>/stat around the measured wrk run, read/write syscalls from /proc/<pid>/io. Tables show medians; "x off" is the median of the
// per-repetition ratios to the off row of the same repetition.
//
//   transfer  A holds --transfer-sessions (100,000) sessions of 1 KiB; B starts: time from B's
//             start() call to ready, and B's stateTransfer stats
//   memory    A and B joined; --memory-sessions (100,000) sessions of 1 KiB created on A; once B
//             holds them all, GC on both and compare process.memoryUsage(): bytes per session
//
// Options: --quick --reps=N --duration=S --warmup=S --sessions=N --connections=N --threads=N
//          --paced-load=F (paced rows: share of the off row's req/s, default 0.5)
//          --rows=a,b --only=rows,transfer,memory --transfer-sessions=N --memory-sessions=N
//          --workload=DIR (session.lua and client.mjs; default ../shared/workload)
//          --buffer-pool-size=N (sets Buffer.poolSize in every node: 0 = no shared 8 KiB pool slabs; a diagnostic)
//          --chunk-size=N (sessions.stateTransferChunkSize of every node; default the library's, 1000)
//          --no-save --profile (node children run with --cpu-prof into bench/http/.prof/<part>-<rep>-<node>/)
// Environment: BENCH_TRACE_GC=1 runs the node children with --trace-gc (pauses on their stdout; a diagnostic).
// Results go to bench/results/http-<ISO date>.json and .md. See bench/README.md.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseOptions } from '../lib/args.mjs';
import { machine } from '../lib/machine.mjs';
import {
  cpuSeconds,
  freePorts,
  installReaper,
  machineTicks,
  removeTemp,
  syscalls,
  tempDir,
  workloadClient,
} from '../lib/proc.mjs';
import { createLog, fmt, resultsJson, saveResults } from '../lib/report.mjs';
import { median } from '../lib/stats.mjs';
import { replicated, waitUntil, waitUntilOrNot } from '../lib/wait.mjs';
import { forkWorker, stopAll } from '../lib/worker.mjs';
import { workloadDir } from '../lib/workload.mjs';
import { runWrk, WRK_MISSING, wrkResult, wrkVersion } from '../lib/wrk.mjs';
import { markdown, targets } from './report.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const T0 = performance.now();
const log = createLog(T0);

// ---- options ------------------------------------------------------------------------------------

const { args, num: option } = parseOptions(
  [
    ...['quick', 'reps', 'duration', 'warmup', 'sessions', 'connections', 'threads', 'paced-load', 'rows', 'only'],
    ...[
      'transfer-sessions',
      'memory-sessions',
      'workload',
      'buffer-pool-size',
      'chunk-size',
      'no-save',
      'profile',
      'help',
    ],
  ],
  'usage: node bench/http/run.mjs [--quick] [--only=rows,transfer,memory] [--rows=off,async1,async2,sync1] [--reps=N]\n' +
    '         [--duration=S] [--warmup=S] [--sessions=N] [--connections=N] [--threads=N] [--paced-load=F]\n' +
    '         [--transfer-sessions=N] [--memory-sessions=N] [--workload=DIR] [--no-save] [--profile]',
);
const quick = args.quick === true;
const num = (k, d) => option(k, d, { positive: true });
const REPS = num('reps', quick ? 1 : 3);
const DURATION_S = num('duration', quick ? 5 : 10);
const WARMUP_S = num('warmup', quick ? 1 : 2);
const SESSIONS = num('sessions', 1000);
const CONNECTIONS = num('connections', 64);
const THREADS = num('threads', 2);
/** Paced rows: the share of the off row's req/s (same repetition) they are held to. */
const PACED_LOAD = num('paced-load', 0.5);
if (PACED_LOAD >= 1) {
  console.error("--paced-load is a share of the off row's req/s: above 0 and below 1 (default 0.5)");
  process.exit(2);
}
const TRANSFER_SESSIONS = num('transfer-sessions', 100_000);
const MEMORY_SESSIONS = num('memory-sessions', 100_000);
const PAYLOAD = 1024;
const WORKLOAD = workloadDir(args.workload);
const LUA = join(WORKLOAD, 'session.lua');
const client = workloadClient(join(WORKLOAD, 'client.mjs'));
const APP = join(root, 'examples', 'counter', 'app.mjs');
const PROF_DIR = join(here, '.prof');

/**
 * The rows, in run and table order: nodes (A first; wrk loads A), script (map-node.mjs for the Map
 * calibration, else node.mjs), send (sendOptions), key (cluster key: mac or aes), connections
 * (else --connections), paced (held to --paced-load of the off row's req/s), lag (probe A -> B),
 * base (the row its ratios are to; default off).
 */
const ALL_ROWS = [
  { id: 'map', label: 'calibration: Map session, no clowder', nodes: 1, script: 'map-node.mjs' },
  { id: 'off', label: 'replication off (A alone)', nodes: 1, send: 'async' },
  { id: 'async1', label: 'async, 1 peer (A+B)', nodes: 2, send: 'async', lag: true },
  { id: 'async2', label: 'async, 2 peers (A+B+C)', nodes: 3, send: 'async' },
  { id: 'sync1', label: 'sync, 1 peer (A+B)', nodes: 2, send: 'sync', lag: true },
  { id: 'off-c1', label: 'replication off, 1 connection', nodes: 1, send: 'async', connections: 1, base: 'off-c1' },
  { id: 'async1-c1', label: 'async, 1 peer, 1 connection', nodes: 2, send: 'async', connections: 1, base: 'off-c1' },
  { id: 'off-paced', label: 'replication off, paced', nodes: 1, send: 'async', paced: true, base: 'off-paced' },
  { id: 'async1-paced', label: 'async, 1 peer, paced', nodes: 2, send: 'async', paced: true, base: 'off-paced' },
  {
    id: 'map-paced',
    label: 'calibration: Map session, paced',
    nodes: 1,
    script: 'map-node.mjs',
    paced: true,
    base: 'map-paced',
  },
  {
    id: 'map1-paced',
    label: 'calibration: Map session pushing each change to 1 peer, paced',
    nodes: 2,
    script: 'map-node.mjs',
    paced: true,
    base: 'map-paced',
  },
  {
    id: 'async1-mac',
    label: 'async, 1 peer, cluster key, MAC only',
    nodes: 2,
    send: 'async',
    key: 'mac',
    base: 'async1',
  },
  {
    id: 'async1-aes',
    label: 'async, 1 peer, cluster key, AES-256-GCM',
    nodes: 2,
    send: 'async',
    key: 'aes',
    base: 'async1',
  },
];
const ROW_FILTER = typeof args.rows === 'string' ? args.rows.split(',').filter(Boolean) : undefined;
const ROWS = ALL_ROWS.filter((r) => ROW_FILTER === undefined || ROW_FILTER.includes(r.id));

/** The parts of a run (--only), in order; each returns its section of the results. */
const PARTS = { rows: () => runRows(), transfer: () => runTransfer(), memory: () => runMemory() };
const ONLY = typeof args.only === 'string' ? args.only.split(',').filter(Boolean) : Object.keys(PARTS);
for (const p of ONLY) {
  if (!(p in PARTS)) {
    console.error(`--only=${p}: known parts are ${Object.keys(PARTS).join(', ')}`);
    process.exit(2);
  }
}
if (ONLY.includes('rows') && ROWS.length === 0) {
  console.error(`--rows=${args.rows} matches no row; rows are ${ALL_ROWS.map((r) => r.id).join(', ')}`);
  process.exit(2);
}

// ---- preconditions: never install anything, say what is missing -----------------------------------

const WRK = wrkVersion();
{
  const problems = [];
  if (!existsSync(join(root, 'dist', 'index.js')))
    problems.push('dist/index.js is missing: run `npm run build` (or `npm run bench:http`, which builds first)');
  if (!existsSync(join(WORKLOAD, 'client.mjs')))
    problems.push(`the shared workload is not at ${WORKLOAD} (session.lua, client.mjs): pass --workload=DIR`);
  if (ONLY.includes('rows') && WRK === undefined) problems.push(WRK_MISSING);
  if (!existsSync('/proc/self/stat')) problems.push('/proc is needed for CPU time per process (Linux only)');
  if (problems.length > 0) {
    for (const p of problems) console.error(`bench:http: ${p}`);
    process.exit(2);
  }
}
installReaper('bench:http');

// ---- nodes ----------------------------------------------------------------------------------------

/** A node child (node.mjs or map-node.mjs) of `spec`; `tag` names its profile directory. */
function startNode(spec, tag) {
  const execArgv = ['--expose-gc', ...(process.env.BENCH_TRACE_GC ? ['--trace-gc'] : [])];
  if (args.profile) {
    const dir = join(PROF_DIR, `${tag}-${spec.name}`);
    mkdirSync(dir, { recursive: true });
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
  }
  const config = { ...spec, app: APP };
  if (args['buffer-pool-size'] !== undefined) config.bufferPoolSize = Number(args['buffer-pool-size']);
  if (args['chunk-size'] !== undefined) config.chunkSize = Number(args['chunk-size']);
  const w = forkWorker(join(here, spec.script ?? 'node.mjs'), {
    name: `node ${spec.name}`,
    execArgv,
    env: { ...process.env, BENCH_NODE: JSON.stringify(config) },
  });
  return Object.assign(w, { httpPort: spec.httpPort });
}

const stopNodes = (nodes) => stopAll(nodes, { command: 'stop', graceMs: 10_000 });
const NAMES = ['A', 'B', 'C', 'D'];
let domainSeq = 0;

/** Ports and specs for an n-node cluster (every node lists every node). */
async function clusterSpecs(n, { send, script, key } = {}) {
  const ports = await freePorts(2 * n);
  const domain = `bench-http-${process.pid}-${domainSeq++}`;
  const members = Array.from({ length: n }, (_, i) => `127.0.0.1:${ports[2 * i + 1]}`);
  return Array.from({ length: n }, (_, i) => ({
    ...{ name: NAMES[i], httpPort: ports[2 * i], clusterPort: ports[2 * i + 1], members, domain },
    ...{ send, expect: n - 1, script, key },
  }));
}

/** Starts every node at once; resolves when each is ready and sees every other. */
async function startCluster(specs, tag) {
  const nodes = specs.map((s) => startNode(s, tag));
  try {
    await Promise.all(nodes.map((p) => p.ready));
  } catch (err) {
    await stopNodes(nodes);
    throw err;
  }
  return nodes;
}

/** Polls a node's stats until `test(stats)` holds (120 s at most). */
const statsUntil = (node, test, what) =>
  waitUntil(async () => test(await node.call('stats')), {
    timeoutMs: 120_000,
    intervalMs: 100,
    what: `${node.name}: ${what}`,
  });

/** Until every node has applied every change the others sent (false after 10 s). */
const settled = (nodes) =>
  waitUntilOrNot(async () => replicated(await Promise.all(nodes.map(async (p) => (await p.call('stats')).changes))), {
    timeoutMs: 10_000,
  });

// ---- rows -----------------------------------------------------------------------------------------

/**
 * A wrk script that runs the shared session.lua with a delay of `ms` before each request of a
 * connection (wrk's delay() hook), written to `dir`.
 */
function pacedScript(dir, ms) {
  const file = join(dir, `paced-${ms}.lua`);
  writeFileSync(file, `dofile(${JSON.stringify(LUA)})\nfunction delay() return ${ms} end\n`);
  return file;
}

const wrk = (port, cookies, seconds, connections, script) =>
  runWrk({
    ports: [port],
    threads: Math.min(THREADS, connections),
    connections,
    seconds,
    script,
    scriptArgs: [cookies, PAYLOAD, 0],
  });

async function measureRow(row, rep, tmp, offRps) {
  const tag = `${row.id}-${rep}`;
  const connections = row.connections ?? CONNECTIONS;
  let script = LUA;
  let paceMs;
  if (row.paced) {
    // Each connection sends one request every (delay + latency): connections / rate seconds.
    if (!(offRps > 0)) throw new Error(`row ${row.id} needs the off row of the same repetition (--rows=off,${row.id})`);
    paceMs = Math.max(1, Math.round((1000 * CONNECTIONS) / (PACED_LOAD * offRps)));
    script = pacedScript(tmp, paceMs);
  }
  const nodes = await startCluster(await clusterSpecs(row.nodes, row), tag);
  const [a] = nodes;
  try {
    const cookies = join(tmp, `cookies-${tag}.txt`);
    const mk = await client('mksessions', { port: a.httpPort, n: SESSIONS, out: cookies });
    if (mk.sessions !== SESSIONS) throw new Error(`mksessions made ${mk.sessions} of ${SESSIONS} sessions`);
    if (WARMUP_S > 0) await wrk(a.httpPort, cookies, WARMUP_S, connections, script);
    const before = await client('sumcounts', { port: a.httpPort, cookies });
    const cpu0 = nodes.map((p) => cpuSeconds(p.pid));
    const sys0 = nodes.map((p) => syscalls(p.pid));
    const m0 = machineTicks();
    const w = await wrk(a.httpPort, cookies, DURATION_S, connections, script);
    const m1 = machineTicks();
    const cpu1 = nodes.map((p) => cpuSeconds(p.pid));
    const sys1 = nodes.map((p) => syscalls(p.pid));
    const r = wrkResult(w);
    const after = await client('sumcounts', { port: a.httpPort, cookies });
    const counted = after.sum - before.sum;
    const cpuPerNode = cpu1.map((c, i) => c - cpu0[i]);
    const cpuTotal = cpuPerNode.reduce((x, y) => x + y, 0);
    const out = {
      row: row.id,
      rep,
      ...(paceMs !== undefined ? { paceMs } : {}),
      requests: r.requests,
      rps: r.rps,
      p50: r.p50_ms,
      p90: r.p90_ms,
      p99: r.p99_ms,
      max: r.max_ms,
      wrkErrors: r.err_connect + r.err_read + r.err_write + r.err_status + r.err_timeout,
      counted,
      lost: Math.max(0, r.requests - counted),
      inFlightExtra: counted - r.requests,
      readErrors: before.errors + after.errors,
      lostSessions: after.lost_sessions,
      cpuPerNodeS: cpuPerNode,
      cpuUsPerReq: (cpuTotal / r.requests) * 1e6,
      nodeCores: cpuTotal / r.duration_s,
      machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total),
      machineSteal: (m1.steal - m0.steal) / (m1.total - m0.total),
      // read and write syscalls per request, per node
      readsPerReq: sys1.map((s, i) => (s.r - sys0[i].r) / r.requests),
      writesPerReq: sys1.map((s, i) => (s.w - sys0[i].w) / r.requests),
    };
    if (row.lag) {
      const lag = await client('lag', { 'write-port': a.httpPort, 'read-port': nodes[1].httpPort, cookies });
      out.lag = {
        probes: lag.probes,
        stale: lag.stale,
        errors: lag.errors,
        stalePct: (100 * lag.stale) / lag.probes,
        p50: lag.read_after_write_p50_ms,
        p99: lag.p99_ms,
      };
    }
    if (nodes.length > 1) {
      // Replicas: once every node applied what the others sent, every node's sum of counts equals A's.
      out.settled = await settled(nodes);
      const sums = [];
      for (const p of nodes) sums.push((await client('sumcounts', { port: p.httpPort, cookies })).sum);
      out.replicaSums = sums;
      out.replicasAgree = sums.every((s) => s === sums[0]);
    }
    return out;
  } finally {
    await stopNodes(nodes);
  }
}

const logRound = (r) =>
  log(
    `rep ${r.rep} ${r.row.padEnd(6)} ${fmt(r.rps).padStart(7)} req/s  p50 ${r.p50.toFixed(2)} p99 ${r.p99.toFixed(2)} ms  ` +
      `cpu ${r.cpuUsPerReq.toFixed(1)} us/req (${r.cpuPerNodeS.map((c) => c.toFixed(2)).join('+')} s)  ` +
      `syscalls/req r ${r.readsPerReq.map((x) => x.toFixed(2)).join('+')} w ${r.writesPerReq.map((x) => x.toFixed(2)).join('+')}  ` +
      `lost ${r.lost} (+${r.inFlightExtra} in flight)  machine busy ${(100 * r.machineBusy).toFixed(0)} % steal ${(100 * r.machineSteal).toFixed(0)} %` +
      (r.lag ? `  lag p50 ${r.lag.p50} p99 ${r.lag.p99} ms stale ${r.lag.stalePct.toFixed(1)} %` : '') +
      (r.replicaSums ? `  replicas ${r.replicasAgree ? 'agree' : `DIFFER ${r.replicaSums.join('/')}`}` : ''),
  );

/** Every row once per repetition; then one entry per row: medians, ratios to its base row, its rounds. */
async function runRows() {
  const tmp = tempDir('clowder-bench-http-');
  const runs = [];
  try {
    for (let rep = 1; rep <= REPS; rep++) {
      for (const row of ROWS) {
        const off = runs.find((x) => x.row === 'off' && x.rep === rep);
        runs.push(await measureRow(row, rep, tmp, off?.rps));
        logRound(runs.at(-1));
      }
    }
  } finally {
    removeTemp(tmp);
  }
  const byRep = (id, rep) => runs.find((r) => r.row === id && r.rep === rep);
  return ROWS.map((row) => {
    const rs = runs.filter((r) => r.row === row.id);
    const paired = (f) =>
      median(rs.map((r) => (byRep(row.base ?? 'off', r.rep) ? f(r, byRep(row.base ?? 'off', r.rep)) : NaN)));
    const med = (key) => median(rs.map((r) => r[key]));
    return {
      row: row.id,
      label: row.label,
      reps: rs.length,
      rps: med('rps'),
      rpsRatio: paired((r, b) => r.rps / b.rps),
      p50: med('p50'),
      p99: med('p99'),
      p99Added: paired((r, b) => r.p99 - b.p99),
      cpuUsPerReq: med('cpuUsPerReq'),
      cpuRatio: paired((r, b) => r.cpuUsPerReq / b.cpuUsPerReq),
      nodeCores: med('nodeCores'),
      machineBusy: med('machineBusy'),
      machineSteal: med('machineSteal'),
      readsPerReq: rs[0].readsPerReq.map((_, i) => median(rs.map((r) => r.readsPerReq[i]))),
      writesPerReq: rs[0].writesPerReq.map((_, i) => median(rs.map((r) => r.writesPerReq[i]))),
      lostMax: Math.max(...rs.map((r) => r.lost)),
      lostTotal: rs.reduce((s, r) => s + r.lost, 0),
      wrkErrors: rs.reduce((s, r) => s + r.wrkErrors + r.readErrors, 0),
      replicasAgree: rs.every((r) => r.replicasAgree !== false),
      lag: row.lag
        ? {
            p50: median(rs.map((r) => r.lag.p50)),
            p99: median(rs.map((r) => r.lag.p99)),
            stalePct: median(rs.map((r) => r.lag.stalePct)),
            errors: rs.reduce((s, r) => s + r.lag.errors, 0),
          }
        : undefined,
      rounds: rs,
    };
  });
}

// ---- state transfer -----------------------------------------------------------------------------

async function runTransfer() {
  const rounds = [];
  for (let rep = 1; rep <= REPS; rep++) {
    const [sa, sb] = await clusterSpecs(2, { send: 'async' });
    const a = startNode({ ...sa, expect: 0 }, `transfer-${rep}`);
    const nodes = [a];
    try {
      await a.ready;
      const filled = await a.call('fill', { n: TRANSFER_SESSIONS, payload: PAYLOAD }, 300_000);
      const b = startNode(sb, `transfer-${rep}`);
      nodes.push(b);
      const ready = await b.ready;
      const st = ready.stateTransfer;
      const r = {
        rep,
        fillMs: filled.ms,
        startMs: ready.startMs,
        forkToReadyMs: b.readyAt - b.forkedAt,
        transferMs: st.durationMs,
        state: st.state,
        sessions: st.sessions,
        bytes: st.bytes,
        chunks: st.chunks,
      };
      rounds.push(r);
      log(
        `transfer rep ${rep}: A filled ${fmt(filled.sessions)} sessions in ${fmt(filled.ms)} ms; B start() -> ready ${fmt(r.startMs)} ms ` +
          `(state transfer ${fmt(r.transferMs)} ms, ${st.state}, ${fmt(r.sessions)} sessions, ${fmt(r.bytes / 1048576, 1)} MiB, ${r.chunks} chunks; fork -> ready ${fmt(r.forkToReadyMs)} ms)`,
      );
    } finally {
      await stopNodes(nodes);
    }
  }
  return {
    sessions: TRANSFER_SESSIONS,
    rounds,
    startMs: median(rounds.map((r) => r.startMs)),
    transferMs: median(rounds.map((r) => r.transferMs)),
    forkToReadyMs: median(rounds.map((r) => r.forkToReadyMs)),
    complete: rounds.every((r) => r.sessions === TRANSFER_SESSIONS && r.state === 'done'),
  };
}

// ---- memory per session -------------------------------------------------------------------------

/** Per-node memory growth between two process.memoryUsage() snapshots, per session. */
function memDelta(nodes, before, after, n) {
  return nodes.map((p, i) => {
    const m0 = before[i].mem;
    const m1 = after[i].mem;
    const d = (k) => m1[k] - m0[k];
    // process.memoryUsage().external already includes arrayBuffers (Node docs): heap + external is the total.
    return {
      node: p.name.replace(/^node /, ''),
      gc: after[i].gc,
      heapUsed: d('heapUsed'),
      external: d('external'),
      arrayBuffers: d('arrayBuffers'),
      rss: d('rss'),
      bytesPerSession: (d('heapUsed') + d('external')) / n,
      heapPerSession: d('heapUsed') / n,
      externalPerSession: d('external') / n,
      rssPerSession: d('rss') / n,
      before: m0,
      after: m1,
    };
  });
}

async function runMemory() {
  const nodes = await startCluster(await clusterSpecs(2, { send: 'async' }), 'memory');
  const [a, b] = nodes;
  const N = MEMORY_SESSIONS;
  const measure = async (what) => {
    // Every change sent was applied before the reading (the last sends completed).
    await settled(nodes);
    const per = memDelta(nodes, before, await Promise.all(nodes.map((p) => p.call('mem'))), N);
    for (const p of per)
      log(
        `memory ${what}${p.node}: ${fmt(p.bytesPerSession)} B/session (heap ${fmt(p.heapPerSession)} + external ${fmt(p.externalPerSession)}, ` +
          `of which arrayBuffers ${fmt(p.arrayBuffers / N)}; rss ${fmt(p.rssPerSession)} B/session)`,
      );
    return per;
  };
  let before;
  try {
    before = await Promise.all(nodes.map((p) => p.call('mem')));
    const filled = await a.call('fill', { n: N, payload: PAYLOAD }, 300_000);
    await statsUntil(b, (st) => st.sessions >= N, `${N} sessions`);
    const per = await measure('');
    // Churn: rewrite about half of the sessions once (requests on A, replicated as deltas), then
    // measure again against the same baseline: memory that old values keep pinned shows here.
    const deltas0 = (await b.call('stats')).manager.received?.delta ?? 0;
    const churned = await a.call('churn', { fraction: 0.5, payload: PAYLOAD }, 300_000);
    await statsUntil(b, (st) => (st.manager.received?.delta ?? 0) - deltas0 >= churned.changed, 'churn deltas');
    const perChurn = await measure(`after rewriting ${fmt(churned.changed)} sessions once, `);
    return { sessions: N, fillMs: filled.ms, nodes: per, churn: { changed: churned.changed, nodes: perChurn } };
  } finally {
    await stopNodes(nodes);
  }
}

// ---- report ---------------------------------------------------------------------------------------

// ---- main ---------------------------------------------------------------------------------------

const startedAt = new Date().toISOString();
const info = machine({ wrk: WRK || '' });
log(
  `clowder HTTP benchmark: ${info.cpuModel} x${info.cores}, node ${info.node}, ${info.wrk || 'no wrk'}, load ${info.loadavgAtStart.join(' ')}; ` +
    `parts ${ONLY.join(', ')}; ${REPS} rep(s)${ONLY.includes('rows') ? `, rows ${ROWS.map((r) => r.id).join(' ')}, wrk ${DURATION_S} s (+${WARMUP_S} s warm-up)` : ''}`,
);
const parts = {};
for (const p of Object.keys(PARTS)) if (ONLY.includes(p)) parts[p] = await PARTS[p]();
const mapRow = parts.rows?.find((r) => r.row === 'map');
if (mapRow) info.mapRps = mapRow.rps;
const settings = {
  ...{ reps: REPS, durationS: DURATION_S, warmupS: WARMUP_S, sessions: SESSIONS, connections: CONNECTIONS },
  ...{ threads: THREADS, pacedLoad: PACED_LOAD, payload: PAYLOAD, rows: ROWS.map((r) => r.id), only: ONLY },
  ...{ transferSessions: TRANSFER_SESSIONS, memorySessions: MEMORY_SESSIONS },
  bufferPoolSize: args['buffer-pool-size'] === undefined ? undefined : Number(args['buffer-pool-size']),
  stateTransferChunkSize: args['chunk-size'] === undefined ? undefined : Number(args['chunk-size']),
};
const tgs = targets(parts, settings);
const md = markdown(info, startedAt, parts, tgs, settings);
console.log(`\n${md}`);
if (!args['no-save']) {
  saveResults(
    resultsJson({
      benchmark: 'http',
      startedAt,
      t0: T0,
      machine: info,
      settings,
      rows: parts.rows,
      targets: tgs,
      ...parts,
    }),
    md,
  );
}
if (args.profile)
  console.log(
    `profiles in ${relative(process.cwd(), PROF_DIR)}/ (summarise: node bench/channel/prof-summary.mjs <file>; then delete)`,
  );
log('done');
