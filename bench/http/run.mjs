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
import { execFileSync, fork } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseOptions } from '../lib/args.mjs';
import { CLK_TCK, cpuSeconds, freePorts, kv, live, machineTicks, reap, run, workloadClient } from '../lib/proc.mjs';
import { median } from '../lib/stats.mjs';
import { workloadDir } from '../lib/workload.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

// ---- options ------------------------------------------------------------------------------------

const KNOWN = [
  'quick',
  'reps',
  'duration',
  'warmup',
  'sessions',
  'connections',
  'threads',
  'paced-load',
  'rows',
  'only',
  'transfer-sessions',
  'memory-sessions',
  'workload',
  'buffer-pool-size',
  'chunk-size',
  'no-save',
  'profile',
  'help',
];
const { args, num: option } = parseOptions(
  KNOWN,
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
const CLIENT = join(WORKLOAD, 'client.mjs');
const client = workloadClient(CLIENT);
const APP = join(root, 'examples', 'counter', 'app.mjs');
const PROF_DIR = join(here, '.prof');

const PARTS = ['rows', 'transfer', 'memory'];
const ONLY = typeof args.only === 'string' ? args.only.split(',').filter(Boolean) : PARTS;
for (const p of ONLY) {
  if (!PARTS.includes(p)) {
    console.error(`--only=${p}: known parts are ${PARTS.join(', ')}`);
    process.exit(2);
  }
}

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
if (ONLY.includes('rows') && ROWS.length === 0) {
  console.error(`--rows=${args.rows} matches no row; rows are ${ALL_ROWS.map((r) => r.id).join(', ')}`);
  process.exit(2);
}

// ---- preconditions: never install anything, say what is missing -----------------------------------

function preconditions() {
  const problems = [];
  if (!existsSync(join(root, 'dist', 'index.js')))
    problems.push('dist/index.js is missing: run `npm run build` (or `npm run bench:http`, which builds first)');
  if (!existsSync(LUA) || !existsSync(CLIENT))
    problems.push(`the shared workload is not at ${WORKLOAD} (session.lua, client.mjs): pass --workload=DIR`);
  if (ONLY.includes('rows')) {
    let version;
    try {
      version = execFileSync('wrk', ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      if (err.code === 'ENOENT') version = undefined;
      else version = `${err.stdout ?? ''}`; // wrk -v exits with status 1 after printing its version
    }
    if (version === undefined) {
      problems.push(
        'wrk is not installed (the HTTP load generator). Install it, e.g.:\n' +
          '    sudo apt-get update && sudo apt-get install -y wrk      (Debian/Ubuntu)\n' +
          '    brew install wrk                                         (macOS)\n' +
          '  or build it from https://github.com/wg/wrk; then run this again.',
      );
    } else wrkVersion = version.split('\n')[0].split(' Copyright')[0].trim();
  }
  if (!existsSync('/proc/self/stat')) problems.push('/proc is needed for CPU time per process (Linux only)');
  if (problems.length > 0) {
    for (const p of problems) console.error(`bench:http: ${p}`);
    process.exit(2);
  }
}
let wrkVersion = '';
preconditions();

// ---- helpers --------------------------------------------------------------------------------------

const fmt = (x, d = 0) =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '-';
const log = (...a) => console.log(`[${((performance.now() - T0) / 1000).toFixed(1).padStart(6)} s]`, ...a);
const T0 = performance.now();

process.on('exit', reap);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    reap();
    process.exit(130);
  });
}

/** Read and write system calls of a process so far (/proc/<pid>/io: syscr, syscw). */
function syscalls(pid) {
  const io = kv(readFileSync(`/proc/${pid}/io`, 'utf8').replace(/: /g, '='));
  return { r: io.syscr, w: io.syscw };
}

// ---- nodes ----------------------------------------------------------------------------------------

class NodeProc {
  constructor(spec, tag) {
    this.name = spec.name;
    this.httpPort = spec.httpPort;
    this.clusterPort = spec.clusterPort;
    this.waiting = new Map();
    this.nextId = 1;
    const execArgv = ['--expose-gc', ...(process.env.BENCH_TRACE_GC ? ['--trace-gc'] : [])];
    if (args.profile) {
      const dir = join(PROF_DIR, `${tag}-${spec.name}`);
      mkdirSync(dir, { recursive: true });
      execArgv.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
    }
    this.forkedAt = performance.now();
    this.child = fork(join(here, spec.script ?? 'node.mjs'), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv,
      env: {
        ...process.env,
        BENCH_NODE: JSON.stringify({
          ...spec,
          app: APP,
          ...(args['buffer-pool-size'] !== undefined ? { bufferPoolSize: Number(args['buffer-pool-size']) } : {}),
          ...(args['chunk-size'] !== undefined ? { chunkSize: Number(args['chunk-size']) } : {}),
        }),
      },
    });
    live.add(this.child);
    this.pid = this.child.pid;
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        live.delete(this.child);
        for (const w of this.waiting.values()) w.reject(new Error(`node ${this.name} exited (${code ?? signal})`));
        this.waiting.clear();
        resolve(code ?? signal);
      });
    });
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node ${this.name} not ready within 60 s`)), 60_000);
      this.child.on('message', (m) => {
        if (m?.type === 'ready') {
          clearTimeout(timer);
          this.readyAt = performance.now();
          resolve(m);
        } else if (m?.type === 'failed') {
          clearTimeout(timer);
          reject(new Error(`node ${this.name} failed to start: ${m.error}`));
        } else if (m?.id !== undefined) {
          const w = this.waiting.get(m.id);
          if (!w) return;
          this.waiting.delete(m.id);
          if (m.ok) w.resolve(m);
          else w.reject(new Error(`node ${this.name}: ${m.error}`));
        }
      });
      this.exited.then((c) => {
        clearTimeout(timer);
        reject(new Error(`node ${this.name} exited (${c}) before it was ready`));
      });
    });
    this.ready.catch(() => {});
  }

  call(cmd, params = {}, timeoutMs = 30_000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`node ${this.name} did not answer ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, cmd, ...params });
    });
  }

  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      await this.call('stop', {}, 10_000);
    } catch {}
    const exited = await Promise.race([this.exited.then(() => true), sleep(5000).then(() => false)]);
    if (!exited) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {}
      await this.exited;
    }
  }
}

const NAMES = ['A', 'B', 'C', 'D'];
let domainSeq = 0;

/** Ports and specs for an n-node cluster (every node lists every node). */
async function clusterSpecs(n, send, script, key) {
  const ports = await freePorts(2 * n);
  const domain = `bench-http-${process.pid}-${domainSeq++}`;
  const members = Array.from({ length: n }, (_, i) => `127.0.0.1:${ports[2 * i + 1]}`);
  return Array.from({ length: n }, (_, i) => ({
    name: NAMES[i],
    httpPort: ports[2 * i],
    clusterPort: ports[2 * i + 1],
    members,
    domain,
    send,
    expect: n - 1,
    script,
    key,
  }));
}

/** Starts every node at once; resolves when each is ready and sees every other. */
async function startCluster(specs, tag) {
  const nodes = specs.map((s) => new NodeProc(s, tag));
  try {
    await Promise.all(nodes.map((p) => p.ready));
  } catch (err) {
    await stopAll(nodes);
    throw err;
  }
  return nodes;
}

async function stopAll(nodes) {
  await Promise.all(nodes.map((p) => p.stop()));
}

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

function wrk(port, cookies, seconds, connections = CONNECTIONS, script = LUA) {
  const argv = [
    `-t${Math.min(THREADS, connections)}`,
    `-c${connections}`,
    `-d${seconds}s`,
    '--timeout',
    '5s',
    '-s',
    script,
    `http://127.0.0.1:${port}`,
    '--',
    cookies,
    String(PAYLOAD),
    '0',
  ];
  return run('wrk', argv, (seconds + 20) * 1000);
}

async function measureRow(row, rep, tmp, offRps) {
  const tag = `${row.id}-${rep}`;
  let script = LUA;
  let paceMs;
  if (row.paced) {
    // Each connection sends one request every (delay + latency): connections / rate seconds.
    if (!(offRps > 0)) throw new Error(`row ${row.id} needs the off row of the same repetition (--rows=off,${row.id})`);
    paceMs = Math.max(1, Math.round((1000 * CONNECTIONS) / (PACED_LOAD * offRps)));
    script = pacedScript(tmp, paceMs);
  }
  const specs = await clusterSpecs(row.nodes, row.send, row.script, row.key);
  const nodes = await startCluster(specs, tag);
  const [a] = nodes;
  try {
    const cookies = join(tmp, `cookies-${tag}.txt`);
    const mk = await client('mksessions', { port: a.httpPort, n: SESSIONS, out: cookies });
    if (mk.sessions !== SESSIONS) throw new Error(`mksessions made ${mk.sessions} of ${SESSIONS} sessions`);
    if (WARMUP_S > 0) await wrk(a.httpPort, cookies, WARMUP_S, row.connections, script);
    const before = await client('sumcounts', { port: a.httpPort, cookies });
    const cpu0 = nodes.map((p) => cpuSeconds(p.pid));
    const sys0 = nodes.map((p) => syscalls(p.pid));
    const m0 = machineTicks();
    const w = await wrk(a.httpPort, cookies, DURATION_S, row.connections, script);
    const m1 = machineTicks();
    const cpu1 = nodes.map((p) => cpuSeconds(p.pid));
    const sys1 = nodes.map((p) => syscalls(p.pid));
    const resultLine = w.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (!resultLine) throw new Error(`wrk printed no RESULT line (code ${w.code}): ${w.stdout}\n${w.stderr}`);
    const r = kv(resultLine.slice(7));
    const after = await client('sumcounts', { port: a.httpPort, cookies });
    const counted = after.sum - before.sum;
    const cpuPerNode = cpu1.map((c, i) => c - cpu0[i]);
    const cpuTotal = cpuPerNode.reduce((x, y) => x + y, 0);
    const errors = r.err_connect + r.err_read + r.err_write + r.err_status + r.err_timeout;
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
      wrkErrors: errors,
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
      // Replicas: once replication settled, every node's sum of counts equals A's.
      await sleep(500);
      const sums = [];
      for (const p of nodes) sums.push((await client('sumcounts', { port: p.httpPort, cookies })).sum);
      out.replicaSums = sums;
      out.replicasAgree = sums.every((s) => s === sums[0]);
    }
    return out;
  } finally {
    await stopAll(nodes);
  }
}

async function runRows() {
  const tmp = mkdtempSync(join(os.tmpdir(), 'clowder-bench-http-'));
  const runs = [];
  try {
    for (let rep = 1; rep <= REPS; rep++) {
      for (const row of ROWS) {
        const off = runs.find((x) => x.row === 'off' && x.rep === rep);
        const r = await measureRow(row, rep, tmp, off?.rps);
        runs.push(r);
        log(
          `rep ${rep} ${row.id.padEnd(6)} ${fmt(r.rps).padStart(7)} req/s  p50 ${r.p50.toFixed(2)} p99 ${r.p99.toFixed(2)} ms  ` +
            `cpu ${r.cpuUsPerReq.toFixed(1)} us/req (${r.cpuPerNodeS.map((c) => c.toFixed(2)).join('+')} s)  ` +
            `syscalls/req r ${r.readsPerReq.map((x) => x.toFixed(2)).join('+')} w ${r.writesPerReq.map((x) => x.toFixed(2)).join('+')}  ` +
            `lost ${r.lost} (+${r.inFlightExtra} in flight)  machine busy ${(100 * r.machineBusy).toFixed(0)} % steal ${(100 * r.machineSteal).toFixed(0)} %` +
            (r.lag ? `  lag p50 ${r.lag.p50} p99 ${r.lag.p99} ms stale ${r.lag.stalePct.toFixed(1)} %` : '') +
            (r.replicaSums ? `  replicas ${r.replicasAgree ? 'agree' : `DIFFER ${r.replicaSums.join('/')}`}` : ''),
        );
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  // Summaries: medians, and medians of per-repetition ratios to the off row.
  const byRep = (id, rep) => runs.find((r) => r.row === id && r.rep === rep);
  const summary = ROWS.map((row) => {
    const rs = runs.filter((r) => r.row === row.id);
    const baseId = row.base ?? 'off';
    const ratio = (key) =>
      median(
        rs.map((r) => {
          const base = byRep(baseId, r.rep);
          return base ? r[key] / base[key] : NaN;
        }),
      );
    return {
      row: row.id,
      label: row.label,
      reps: rs.length,
      rps: median(rs.map((r) => r.rps)),
      rpsRatio: ratio('rps'),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      p99Added: median(
        rs.map((r) => {
          const base = byRep(baseId, r.rep);
          return base ? r.p99 - base.p99 : NaN;
        }),
      ),
      cpuUsPerReq: median(rs.map((r) => r.cpuUsPerReq)),
      cpuRatio: ratio('cpuUsPerReq'),
      nodeCores: median(rs.map((r) => r.nodeCores)),
      machineBusy: median(rs.map((r) => r.machineBusy)),
      machineSteal: median(rs.map((r) => r.machineSteal)),
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
      runsRps: rs.map((r) => r.rps),
    };
  });
  return { runs, summary };
}

// ---- state transfer -----------------------------------------------------------------------------

async function runTransfer() {
  const reps = [];
  for (let rep = 1; rep <= REPS; rep++) {
    const [sa, sb] = await clusterSpecs(2, 'async');
    const a = new NodeProc({ ...sa, expect: 0 }, `transfer-${rep}`);
    const nodes = [a];
    try {
      await a.ready;
      const filled = await a.call('fill', { n: TRANSFER_SESSIONS, payload: PAYLOAD }, 300_000);
      const b = new NodeProc(sb, `transfer-${rep}`);
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
      reps.push(r);
      log(
        `transfer rep ${rep}: A filled ${fmt(filled.sessions)} sessions in ${fmt(filled.ms)} ms; B start() -> ready ${fmt(r.startMs)} ms ` +
          `(state transfer ${fmt(r.transferMs)} ms, ${st.state}, ${fmt(r.sessions)} sessions, ${fmt(r.bytes / 1048576, 1)} MiB, ${r.chunks} chunks; fork -> ready ${fmt(r.forkToReadyMs)} ms)`,
      );
    } finally {
      await stopAll(nodes);
    }
  }
  return {
    sessions: TRANSFER_SESSIONS,
    reps,
    startMs: median(reps.map((r) => r.startMs)),
    transferMs: median(reps.map((r) => r.transferMs)),
    forkToReadyMs: median(reps.map((r) => r.forkToReadyMs)),
    complete: reps.every((r) => r.sessions === TRANSFER_SESSIONS && r.state === 'done'),
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
      node: p.name,
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

/** Polls a node's stats until `test(stats)` holds (120 s at most). */
async function waitFor(node, test, what) {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const st = await node.call('stats');
    if (test(st)) return st;
    if (Date.now() > deadline) throw new Error(`${node.name}: ${what} not reached after 120 s`);
    await sleep(200);
  }
}

async function runMemory() {
  const specs = await clusterSpecs(2, 'async');
  const nodes = await startCluster(specs, 'memory');
  const [a, b] = nodes;
  const N = MEMORY_SESSIONS;
  try {
    const before = await Promise.all(nodes.map((p) => p.call('mem')));
    const filled = await a.call('fill', { n: N, payload: PAYLOAD }, 300_000);
    await waitFor(b, (st) => st.sessions >= N, `${N} sessions`);
    await sleep(500); // let the last sends complete and buffers go
    const after = await Promise.all(nodes.map((p) => p.call('mem')));
    const per = memDelta(nodes, before, after, N);
    for (const p of per) {
      log(
        `memory ${p.node}: ${fmt(p.bytesPerSession)} B/session (heap ${fmt(p.heapPerSession)} + external ${fmt(p.externalPerSession)}, ` +
          `of which arrayBuffers ${fmt(p.arrayBuffers / N)}; rss ${fmt(p.rssPerSession)} B/session)`,
      );
    }
    // Churn: rewrite about half of the sessions once (requests on A, replicated as deltas), then
    // measure again against the same baseline: memory that old values keep pinned shows here.
    const deltas0 = (await b.call('stats')).manager.received?.delta ?? 0;
    const churned = await a.call('churn', { fraction: 0.5, payload: PAYLOAD }, 300_000);
    await waitFor(b, (st) => (st.manager.received?.delta ?? 0) - deltas0 >= churned.changed, 'churn deltas');
    await sleep(500);
    const afterChurn = await Promise.all(nodes.map((p) => p.call('mem')));
    const perChurn = memDelta(nodes, before, afterChurn, N);
    for (const p of perChurn) {
      log(
        `memory after rewriting ${fmt(churned.changed)} sessions once, ${p.node}: ${fmt(p.bytesPerSession)} B/session ` +
          `(heap ${fmt(p.heapPerSession)} + external ${fmt(p.externalPerSession)}; rss ${fmt(p.rssPerSession)} B/session)`,
      );
    }
    return { sessions: N, fillMs: filled.ms, nodes: per, churn: { changed: churned.changed, nodes: perChurn } };
  } finally {
    await stopAll(nodes);
  }
}

// ---- report ---------------------------------------------------------------------------------------

/** The code under test: git commit, whether src/ has uncommitted changes, when dist/ was built (read-only). */
function codeInfo() {
  const git = (...argv) => {
    try {
      return execFileSync('git', argv, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return undefined;
    }
  };
  const dirty = git('status', '--porcelain', '--untracked-files=all', '--', 'src');
  let distBuilt;
  try {
    distBuilt = statSync(join(root, 'dist', 'index.js')).mtime.toISOString();
  } catch {}
  return {
    commit: git('rev-parse', '--short', 'HEAD'),
    srcDirty: dirty === undefined ? undefined : dirty !== '',
    distBuilt,
  };
}

function machine() {
  const cpus = os.cpus();
  return {
    code: codeInfo(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    wrk: wrkVersion,
    clkTck: CLK_TCK,
    loadavgAtStart: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

function targets(rows, transfer, memory) {
  const t = [];
  const s = (id) => rows?.summary.find((r) => r.row === id);
  const add = (name, value, pass, detail) => t.push({ name, value, pass, detail });
  if (s('off') && s('async1')) {
    const a = s('async1');
    add(
      'async to 1 peer >= 0.75 x replication-off req/s',
      a.rpsRatio,
      a.rpsRatio >= 0.75,
      `${a.rpsRatio.toFixed(2)} x`,
    );
    add(
      'cluster CPU per request, async 1 peer <= 1.6 x off',
      a.cpuRatio,
      a.cpuRatio <= 1.6,
      `${a.cpuRatio.toFixed(2)} x`,
    );
    // On a busy 2-core machine p99 under 64 connections is queueing: say so when it swings more than the target.
    const offP99 = rows.runs.filter((r) => r.row === 'off').map((r) => r.p99);
    const spread = Math.max(...offP99) - Math.min(...offP99);
    add(
      `p99 added by async replication <= 1 ms (${CONNECTIONS} connections: A saturated, so mostly queueing)`,
      a.p99Added,
      a.p99Added <= 1,
      `${a.p99Added.toFixed(2)} ms${spread > 5 ? ` (inconclusive: the off row's p99 alone ranged ${Math.min(...offP99).toFixed(1)}-${Math.max(...offP99).toFixed(1)} ms over the repetitions)` : ''}`,
    );
  }
  if (s('off-c1') && s('async1-c1')) {
    const a = s('async1-c1');
    add(
      'p99 added by async replication <= 1 ms (1 connection: nothing queues)',
      a.p99Added,
      a.p99Added <= 1,
      `${a.p99Added.toFixed(2)} ms (p99 ${s('off-c1').p99.toFixed(2)} -> ${a.p99.toFixed(2)} ms; ${a.rpsRatio.toFixed(2)} x req/s)`,
    );
  }
  // The same load on the hand-written Map session, alone and pushing each change to one peer
  // (bench/lib/map-peers.mjs): what the least possible replication adds on this machine.
  const floorText = () => {
    const m = s('map1-paced');
    if (!m || !s('map-paced')) return '';
    return `; the replication floor at the same load, Map session pushing each change to 1 peer: +${m.p99Added.toFixed(2)} ms (p99 ${s('map-paced').p99.toFixed(2)} -> ${m.p99.toFixed(2)} ms)`;
  };
  if (s('off-paced') && s('async1-paced')) {
    const a = s('async1-paced');
    const o = s('off-paced');
    add(
      `p99 added by async replication <= 1 ms (paced: ${CONNECTIONS} connections at ${PACED_LOAD} x the off row's req/s)`,
      a.p99Added,
      a.p99Added <= 1,
      `${a.p99Added.toFixed(2)} ms (p99 ${o.p99.toFixed(2)} -> ${a.p99.toFixed(2)} ms at ${fmt(o.rps)} / ${fmt(a.rps)} req/s)${floorText()}`,
    );
  }
  if (s('off') && s('async2')) {
    const a = s('async2');
    // The issue sets the CPU target for asynchronous replication to one peer; with two, each peer
    // adds its own decode-and-apply of every change. Reported beside the target, not as one.
    add(
      'cluster CPU per request, async 2 peers, against 1.6 x off (the target is for one peer)',
      a.cpuRatio,
      null,
      `${a.cpuRatio.toFixed(2)} x (${(a.cpuRatio - 1).toFixed(2)} x off added by two peers)`,
    );
  }
  for (const id of ['async1-mac', 'async1-aes']) {
    const a = s(id);
    if (a && s('async1'))
      add(
        `cost of the cluster key (${id === 'async1-mac' ? 'MAC only' : 'AES-256-GCM'}) on this workload, against async1 (the channel's target: <= 20 %)`,
        a.rpsRatio,
        null,
        `${a.rpsRatio.toFixed(2)} x async1's req/s, ${a.cpuRatio.toFixed(2)} x its CPU per request`,
      );
  }
  if (s('off') && s('sync1')) {
    const a = s('sync1');
    add('sync to 1 peer >= 0.5 x replication-off req/s', a.rpsRatio, a.rpsRatio >= 0.5, `${a.rpsRatio.toFixed(2)} x`);
  }
  if (rows) {
    const lost = rows.runs.reduce((x, r) => x + r.lost, 0);
    const agree = rows.summary.every((r) => r.replicasAgree);
    add(
      '0 lost increments in every row (and replicas agree)',
      lost,
      lost === 0 && agree,
      `${lost} lost over ${rows.runs.length} runs${agree ? '' : '; replica sums differ'}`,
    );
  }
  if (transfer) {
    add(
      `state transfer of ${fmt(transfer.sessions)} sessions: B start() -> ready <= 3 s`,
      transfer.startMs,
      transfer.startMs <= 3000 && transfer.complete,
      `${fmt(transfer.startMs)} ms${transfer.complete ? '' : ' (INCOMPLETE)'}`,
    );
  }
  if (memory) {
    const worst = Math.max(...memory.nodes.map((n) => n.bytesPerSession));
    add(
      'memory per idle 1 KiB session <= 3 KiB on every node',
      worst,
      worst <= 3072,
      memory.nodes.map((n) => `${n.node} ${fmt(n.bytesPerSession)} B`).join(', '),
    );
  }
  return t;
}

function markdown(info, startedAt, rows, transfer, memory, tgs) {
  const L = [];
  L.push(`## clowder HTTP benchmark, ${startedAt}`, '');
  L.push(
    `${info.cpuModel} x${info.cpus}, ${info.memGiB} GiB, node ${info.node}, ${info.platform}, ${info.wrk}, load at start ${info.loadavgAtStart.join(' ')}.`,
  );
  L.push(
    `Code: commit ${info.code.commit ?? '?'}${info.code.srcDirty ? ' with uncommitted changes in src/' : ''}, dist/ built ${info.code.distBuilt ?? '?'}.`,
  );
  if (args['buffer-pool-size'] !== undefined)
    L.push(`**Diagnostic run: Buffer.poolSize = ${args['buffer-pool-size']} in every node** (not the default 8192).`);
  if (args['chunk-size'] !== undefined)
    L.push(`**Diagnostic run: sessions.stateTransferChunkSize = ${args['chunk-size']}** (not the default 1000).`);
  if (rows) {
    L.push(
      `Workload: counter app at /app, ${SESSIONS} sessions, \`wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION_S}s --timeout 5s -s session.lua -- cookies 1024 0\` ` +
        `(write-only, 1 KiB payload) against node A after a ${WARMUP_S} s warm-up; ${REPS} repetition(s), medians; ` +
        '"x off" = median of per-repetition ratios to the off row. CPU = utime+stime of every node process during the wrk run, per request.',
      '',
    );
    const busy = rows.summary.find((r) => r.row === 'off')?.machineBusy;
    if (busy >= 0.95) {
      L.push(
        `**The machine was saturated during the runs (both cores ${(100 * busy).toFixed(0)} % busy in the off row, with wrk, the nodes and other work): ` +
          'req/s and latency ratios are uncertain; CPU µs/req and syscalls/req are the most robust columns.**',
        '',
      );
    }
    L.push('### Throughput, latency, CPU', '');
    L.push(
      '| row | req/s | x off | p50 ms | p99 ms | CPU µs/req (all nodes) | x off | node cores | syscalls/req read / write (A+B+C) | machine busy / steal | lost (max/run) | replicas agree | runs (req/s) |',
    );
    L.push('|:---|---:|---:|---:|---:|---:|---:|---:|:---|---:|---:|:---:|:---|');
    for (const s of rows.summary) {
      L.push(
        `| ${s.row}: ${s.label} | ${fmt(s.rps)} | ${s.rpsRatio.toFixed(2)} | ${s.p50.toFixed(2)} | ${s.p99.toFixed(2)} | ${s.cpuUsPerReq.toFixed(1)} | ${s.cpuRatio.toFixed(2)} | ${s.nodeCores.toFixed(2)} | ${s.readsPerReq.map((x) => x.toFixed(2)).join('+')} / ${s.writesPerReq.map((x) => x.toFixed(2)).join('+')} | ${(100 * s.machineBusy).toFixed(0)} / ${(100 * s.machineSteal).toFixed(0)} % | ${s.lostMax} | ${s.row === 'off' || s.row === 'map' || s.row === 'map-paced' ? '-' : s.replicasAgree ? 'yes' : 'NO'} | ${s.runsRps.map((x) => fmt(x)).join(' / ')} |`,
      );
    }
    const lagRows = rows.summary.filter((s) => s.lag);
    if (lagRows.length > 0) {
      L.push(
        '',
        '### Replication lag A -> B (client.mjs lag: write on A, read on B at once; 200 probes; /app/read is not declared read-only, so B takes the session over before it reads: see the compare benchmark for readOnlyFilter)',
        '',
      );
      L.push('| row | read-after-write p50 ms | p99 ms | stale % | errors |');
      L.push('|:---|---:|---:|---:|---:|');
      for (const s of lagRows)
        L.push(
          `| ${s.row} | ${s.lag.p50.toFixed(3)} | ${s.lag.p99.toFixed(3)} | ${s.lag.stalePct.toFixed(1)} | ${s.lag.errors} |`,
        );
    }
    L.push('', '<details><summary>every run</summary>', '');
    L.push(
      '| rep | row | req/s | p50 | p99 | max ms | CPU s per node | µs/req | lost | +in flight | wrk err | lag p50/p99 ms, stale % |',
    );
    L.push('|---:|:---|---:|---:|---:|---:|:---|---:|---:|---:|---:|:---|');
    for (const r of rows.runs) {
      L.push(
        `| ${r.rep} | ${r.row} | ${fmt(r.rps)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(1)} | ${r.cpuPerNodeS.map((c) => c.toFixed(2)).join(' + ')} | ${r.cpuUsPerReq.toFixed(1)} | ${r.lost} | ${r.inFlightExtra} | ${r.wrkErrors} | ${r.lag ? `${r.lag.p50} / ${r.lag.p99}, ${r.lag.stalePct.toFixed(1)}` : '-'} |`,
      );
    }
    L.push('', '</details>');
  }
  if (transfer) {
    L.push('', `### State transfer: B joins A holding ${fmt(transfer.sessions)} sessions of 1 KiB`, '');
    L.push(
      '| rep | A fill ms | B start() -> ready ms | stateTransfer.durationMs | state | sessions | MiB | chunks | fork -> ready ms |',
    );
    L.push('|---:|---:|---:|---:|:---|---:|---:|---:|---:|');
    for (const r of transfer.reps) {
      L.push(
        `| ${r.rep} | ${fmt(r.fillMs)} | ${fmt(r.startMs)} | ${fmt(r.transferMs)} | ${r.state} | ${fmt(r.sessions)} | ${fmt(r.bytes / 1048576, 1)} | ${r.chunks} | ${fmt(r.forkToReadyMs)} |`,
      );
    }
    L.push(
      `| **median** | | **${fmt(transfer.startMs)}** | ${fmt(transfer.transferMs)} | | | | | ${fmt(transfer.forkToReadyMs)} |`,
    );
  }
  if (memory) {
    L.push(
      '',
      `### Memory per idle session (${fmt(memory.sessions)} sessions of 1 KiB created on A, replicated to B; after GC)`,
      '',
    );
    L.push(
      '| node | bytes/session (heapUsed + external) | heapUsed | external | of which arrayBuffers | rss | Δ heapUsed MiB | Δ external MiB | Δ rss MiB |',
    );
    L.push('|:---|---:|---:|---:|---:|---:|---:|---:|---:|');
    const n = memory.sessions;
    for (const p of memory.nodes) {
      L.push(
        `| ${p.node} | ${fmt(p.bytesPerSession)} | ${fmt(p.heapUsed / n)} | ${fmt(p.external / n)} | ${fmt(p.arrayBuffers / n)} | ${fmt(p.rss / n)} | ${fmt(p.heapUsed / 1048576, 1)} | ${fmt(p.external / 1048576, 1)} | ${fmt(p.rss / 1048576, 1)} |`,
      );
    }
    if (memory.churn) {
      for (const p of memory.churn.nodes) {
        L.push(
          `| ${p.node}, after rewriting ${fmt(memory.churn.changed)} sessions once | ${fmt(p.bytesPerSession)} | ${fmt(p.heapUsed / n)} | ${fmt(p.external / n)} | ${fmt(p.arrayBuffers / n)} | ${fmt(p.rss / n)} | ${fmt(p.heapUsed / 1048576, 1)} | ${fmt(p.external / 1048576, 1)} | ${fmt(p.rss / 1048576, 1)} |`,
        );
      }
    }
    L.push(
      '',
      '`external` already includes `arrayBuffers` (Node documents it so), so the per-session figure is heapUsed + external.',
    );
  }
  if (tgs.length > 0) {
    L.push('', '### Targets', '');
    for (const t of tgs) L.push(`- **${t.pass === null ? 'info' : t.pass ? 'PASS' : 'MISS'}** ${t.name}: ${t.detail}`);
  }
  return `${L.join('\n')}\n`;
}

// ---- main ---------------------------------------------------------------------------------------

const startedAt = new Date().toISOString();
const info = machine();
log(
  `clowder HTTP benchmark: ${info.cpuModel} x${info.cpus}, node ${info.node}, ${info.wrk || 'no wrk'}, load ${info.loadavgAtStart.join(' ')}; ` +
    `parts ${ONLY.join(', ')}; ${REPS} rep(s)${ONLY.includes('rows') ? `, rows ${ROWS.map((r) => r.id).join(' ')}, wrk ${DURATION_S} s (+${WARMUP_S} s warm-up)` : ''}`,
);
let rows;
let transfer;
let memory;
if (ONLY.includes('rows')) rows = await runRows();
if (ONLY.includes('transfer')) transfer = await runTransfer();
if (ONLY.includes('memory')) memory = await runMemory();
const tgs = targets(rows, transfer, memory);
const md = markdown(info, startedAt, rows, transfer, memory, tgs);
console.log(`\n${md}`);
if (!args['no-save']) {
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `http-${startedAt.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-')}`);
  const json = {
    benchmark: 'http',
    startedAt,
    elapsedS: +((performance.now() - T0) / 1000).toFixed(1),
    machine: info,
    settings: {
      reps: REPS,
      durationS: DURATION_S,
      warmupS: WARMUP_S,
      sessions: SESSIONS,
      connections: CONNECTIONS,
      threads: THREADS,
      payload: PAYLOAD,
      rows: ROWS.map((r) => r.id),
      only: ONLY,
      transferSessions: TRANSFER_SESSIONS,
      memorySessions: MEMORY_SESSIONS,
      bufferPoolSize: args['buffer-pool-size'] === undefined ? undefined : Number(args['buffer-pool-size']),
      stateTransferChunkSize: args['chunk-size'] === undefined ? undefined : Number(args['chunk-size']),
    },
    rows,
    transfer,
    memory,
    targets: tgs,
  };
  writeFileSync(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(`${base}.md`, md);
  console.log(`results: ${relative(process.cwd(), base)}.json, .md`);
}
if (args.profile)
  console.log(
    `profiles in ${relative(process.cwd(), PROF_DIR)}/ (summarise: node bench/channel/prof-summary.mjs <file>; then delete)`,
  );
log('done');
