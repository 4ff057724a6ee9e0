// Comparison benchmark: clowder against the usual ways of keeping HTTP sessions in Node.js, on the
// shared counter workload (../shared/workload), every row in one run, one after the other,
// under the same load.
//
//   npm run bench                                   (root: builds, `npm --prefix bench/compare ci`, then this)
//   node bench/compare/run.mjs --quick              (after a build and the ci: 3 s per row)
//   node bench/compare/run.mjs --rows=map,clowder   (ids or id prefixes; see ROWS below)
//   node bench/compare/run.mjs --profile --rows=map,clowder-async   (top self time of each row's servers)
//
// Rows (ids for --rows; a prefix selects several, e.g. `express`, `clowder`):
//   bare            bare node:http, no sessions (fixed body): the ceiling
//   map             hand-written in-memory Map sessions on node:http: the ceiling for a session layer
//   map-batched     the same, each response ended at the end of the event-loop turn with the turn's
//                   others, as clowder's batchResponses (default) does: the ceiling like for like
//   map-replicated  3 Map servers, each pushing every change to the others (JSON frames, one write
//                   per peer per turn; map-peers.mjs), wrk spread: the replication ceiling (no
//                   ownership, so concurrent writes on two nodes lose increments: not a target row)
//   express-mem     express 5 + express-session MemoryStore
//   express-redis   express + express-session + connect-redis, one process
//   express-redis2  two express processes + connect-redis sharing one redis-server (wrk over both)
//   fastify-mem     fastify 5 + @fastify/session (its memory store)
//   fastify-redis   fastify + @fastify/session + connect-redis
//   clowder-off     clowder, one node, replication off (no members)
//   clowder-async   clowder DeltaManager, asynchronous, 3 nodes, wrk spread over all three
//   clowder-sync    clowder DeltaManager, synchronous (use_ack,sync), 3 nodes, wrk spread
//   clowder-express clowder's express-session compatibility path: express 5 + clowder's session
//                   middleware (library mode), async, 3 nodes, wrk spread (the drop-in for the
//                   express-session + connect-redis rows)
//   (BackupManager rows are printed as n/a until it exists)
// and measurements (also selected by --rows; all run by default):
//   lag             fresh async 3-node cluster with /app/read declared read-only (readOnlyFilter):
//                   the shared probe (client.mjs lag, mirrored by lag-client.mjs; 1000 probes
//                   after --warmup seconds of the same probes, as every row is measured after a
//                   warm-up; the warm-up's first 1000 are reported too, as "cold"), write on A, read
//                   on B at once (stale reads show how far replication trails the client's next
//                   request), and the replication lag itself: when B applied each write (its
//                   attribute listener) after the client had A's answer, on the host's monotonic
//                   clock; the same probe reading on A, and on bare node:http: one server, and
//                   written on one and read on another (the read's floors); one loopback message
//                   between two idle processes (wake-floor.mjs); on 3 map-replicated servers (the
//                   replication floor); on a cluster where /app/read is not read-only
//                   (B takes the session over before it reads); on one with ownership: none
//                   (Tomcat's behaviour); and on 2 nodes with /app/read read-only (no third node
//                   waking on each write)
//   failover        same cluster: SIGKILL node C, time until A's and B's /_clowder/stats show one
//                   member less (polled every 5 ms)
//   transfer        A holds --transfer-sessions (100,000) sessions of 1 KiB; B joins: B's
//                   /_clowder/stats sessions[0].stateTransfer.durationMs, and B's start() -> ready
//
// Per row: start the servers (and a fresh redis-server for Redis rows), client.mjs mksessions
// (1000 sessions on the first server), a wrk warm-up, client.mjs sumcounts, the measured
// `wrk -c64 -d10s --timeout 5s -s session.lua -- cookies 1024 0` (-t2, or one thread per server when
// there are more than two: WRK_PORTS gives wrk thread i the server i mod n), sumcounts again, stop.
// lost increments = acknowledged requests (wrk requests - non-2xx) - (after - before) when that is
// positive; requests still in flight when wrk stops are served but not counted by wrk, so the raw
// difference (after - before - requests) may legitimately be 0..connections. CPU = utime+stime of
// every server process and redis-server from /proc/<pid>/stat around the measured run, per request.
// RSS = sum of VmRSS of the same processes at the end of the measured run.
//
// Options: --quick --rows=a,b --duration=S --warmup=S --sessions=N --connections=N --reps=N
//          --transfer-sessions=N --workload=DIR --no-save --profile --help
//          --read-pct=N: N % of requests are GET /app/read (90: the workload's read-mostly mix), with
//          bench/compare/session-mix.lua, which also counts the acknowledged increments for the
//          count check; clowder nodes declare /app/read read-only (sessions.readOnlyFilter)
// With --profile, KEEP_PROF=DIR in the environment also copies the raw .cpuprofile files to DIR.
// --reps (default 3, --quick 1): rounds; each round runs every selected row and measurement once.
// Tables give medians: req/s, and x Map / x Redis as the median of each round's own ratio; the
// other columns come from the row's median round; lost increments and errors are the worst round.
// Results: bench/results/compare-<ISO date>.json and .md. See bench/README.md.
//
// This script never installs anything: it checks for wrk, redis-server and bench/compare's
// node_modules, and says how to get them. All traffic stays on 127.0.0.1; every process it starts
// (servers, redis-server, wrk, client.mjs) is killed by its PID on the way out, also on failure.
import { execFileSync, fork, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { connect } from 'node:net';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseOptions } from '../lib/args.mjs';
import {
  CLK_TCK,
  cpuSeconds,
  freePorts,
  kv,
  live,
  machineTicks,
  reap,
  rssBytes,
  run,
  workloadClient,
} from '../lib/proc.mjs';
import { median, percentile } from '../lib/stats.mjs';
import { workloadDir } from '../lib/workload.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const T0 = performance.now();

// ---- options ------------------------------------------------------------------------------------

const KNOWN = [
  'quick',
  'rows',
  'duration',
  'warmup',
  'sessions',
  'connections',
  'transfer-sessions',
  'workload',
  'no-save',
  'profile',
  'reps',
  'read-pct',
  'help',
];
const { args, num: option } = parseOptions(
  KNOWN,
  'usage: node bench/compare/run.mjs [--quick] [--rows=id,prefix,...] [--duration=S] [--warmup=S] [--sessions=N]\n' +
    '         [--connections=N] [--transfer-sessions=N] [--reps=N] [--read-pct=N] [--workload=DIR] [--no-save] [--profile]\n' +
    'rows: bare map map-batched express-mem express-redis express-redis2 fastify-mem fastify-redis clowder-off clowder-async\n' +
    '      clowder-sync clowder-express lag failover transfer',
);
const quick = args.quick === true;
const num = option;
const DURATION_S = num('duration', quick ? 3 : 10);
/** Rounds: every row once per round, rounds one after another, so drift hits all rows alike. */
const REPS = num('reps', quick ? 1 : 3, { positive: true });
const WARMUP_S = num('warmup', quick ? 1 : 2);
const SESSIONS = num('sessions', 1000);
const CONNECTIONS = num('connections', 64);
const TRANSFER_SESSIONS = num('transfer-sessions', 100_000);
const PAYLOAD = 1024;
/** Percent of requests that are GET /app/read (the workload's read-mostly mix is 90); 0 = write-only. */
const READ_PCT = num('read-pct', 0);
if (!Number.isInteger(READ_PCT) || READ_PCT > 100) {
  console.error("--read-pct is a whole percentage from 0 to 100 (90 is the workload's read-mostly mix)");
  process.exit(2);
}
const WORKLOAD = workloadDir(args.workload);
// A mixed load needs the number of acknowledged writes for the count check: session-mix.lua is
// the shared script plus that count. Write-only runs use the shared script itself.
const LUA = READ_PCT > 0 ? join(here, 'session-mix.lua') : join(WORKLOAD, 'session.lua');
const CLIENT = join(WORKLOAD, 'client.mjs');
const client = workloadClient(CLIENT);
const APP = join(root, 'examples', 'counter', 'app.mjs');
const SERVERS = join(here, 'servers');
const PROFILE = args.profile === true;

const ROWS = [
  { id: 'bare', label: 'bare node:http (no sessions)', script: 'bare.mjs', nodes: 1, counts: false },
  { id: 'map', label: 'in-memory Map sessions (node:http)', script: 'map.mjs', nodes: 1 },
  {
    id: 'map-batched',
    label: 'in-memory Map sessions, responses ended at the end of the turn (as batchResponses)',
    script: 'map.mjs',
    nodes: 1,
    batch: true,
  },
  {
    id: 'map-replicated',
    label: 'in-memory Map sessions pushing every change to 2 peers (the replication ceiling), 3 nodes',
    script: 'map.mjs',
    nodes: 3,
    replicated: true,
  },
  {
    id: 'express-mem',
    label: 'express + express-session MemoryStore',
    script: 'express.mjs',
    nodes: 1,
    store: 'memory',
  },
  {
    id: 'express-redis',
    label: 'express + express-session + connect-redis',
    script: 'express.mjs',
    nodes: 1,
    store: 'redis',
  },
  {
    id: 'express-redis2',
    label: '2 x express + express-session + connect-redis, one redis',
    script: 'express.mjs',
    nodes: 2,
    store: 'redis',
  },
  { id: 'fastify-mem', label: 'fastify + @fastify/session memory', script: 'fastify.mjs', nodes: 1, store: 'memory' },
  {
    id: 'fastify-redis',
    label: 'fastify + @fastify/session + connect-redis',
    script: 'fastify.mjs',
    nodes: 1,
    store: 'redis',
  },
  {
    id: 'clowder-off',
    label: 'clowder, replication off (1 node)',
    script: 'clowder.mjs',
    nodes: 1,
    clowder: true,
    send: 'async',
  },
  {
    id: 'clowder-async',
    label: 'clowder DeltaManager async, 3 nodes',
    script: 'clowder.mjs',
    nodes: 3,
    clowder: true,
    send: 'async',
  },
  {
    id: 'clowder-sync',
    label: 'clowder DeltaManager sync, 3 nodes',
    script: 'clowder.mjs',
    nodes: 3,
    clowder: true,
    send: 'sync',
  },
  {
    id: 'clowder-express',
    label: 'express + clowder session middleware, async, 3 nodes',
    script: 'express-clowder.mjs',
    nodes: 3,
    clowder: true,
    send: 'async',
  },
  { id: 'backup-async', label: 'clowder BackupManager async, 3 nodes', na: 'n/a (BackupManager not built yet)' },
  { id: 'backup-sync', label: 'clowder BackupManager sync, 3 nodes', na: 'n/a (BackupManager not built yet)' },
];
const EXTRAS = ['lag', 'failover', 'transfer'];
/** sessions.readOnlyFilter of the lag cluster: the counter app's read endpoint. */
const READ_ONLY = '^/app/read$';
/** The lag probe's side clusters (keys of its result) and how the report names them. */
const LAG_SIDES = [
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
const FILTER = typeof args.rows === 'string' ? args.rows.split(',').filter(Boolean) : undefined;
const selected = (id) => FILTER === undefined || FILTER.some((f) => id === f || id.startsWith(f));
const RUN_ROWS = ROWS.filter((r) => selected(r.id));
const RUN_EXTRAS = EXTRAS.filter(selected);
/**
 * Order of execution within a round (the table keeps ROWS' order): rows whose ratio is a target
 * run back to back — map, clowder-off, clowder-async, the Redis rows next to the clowder rows —
 * so that the machine's drift between them is as small as it can be.
 */
const RUN_ORDER = [
  'bare',
  'map',
  'map-batched',
  'map-replicated',
  'clowder-off',
  'clowder-async',
  'fastify-redis',
  'clowder-sync',
  'express-redis2',
  'clowder-express',
  'express-redis',
  'fastify-mem',
  'express-mem',
];
const orderOf = (id) => (RUN_ORDER.includes(id) ? RUN_ORDER.indexOf(id) : RUN_ORDER.length);
const RUN_SEQUENCE = [...RUN_ROWS].sort((a, b) => orderOf(a.id) - orderOf(b.id));
if (RUN_ROWS.length === 0 && RUN_EXTRAS.length === 0) {
  console.error(`--rows=${args.rows} matches nothing; ids are ${[...ROWS.map((r) => r.id), ...EXTRAS].join(', ')}`);
  process.exit(2);
}
const measured = RUN_ROWS.filter((r) => !r.na);
const needsRedis = measured.some((r) => r.store === 'redis');
const needsClowder = measured.some((r) => r.clowder) || RUN_EXTRAS.length > 0;
const needsWrk = measured.length > 0;

// ---- preconditions: never install anything, say what is missing -----------------------------------

function versionOf(cmd, argv) {
  try {
    return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    if (err.code === 'ENOENT') return undefined;
    return `${err.stdout ?? ''}${err.stderr ?? ''}`; // wrk -v exits with status 1 after printing its version
  }
}

const wrkLine = (v) =>
  (v ?? '')
    .split('\n')[0]
    .replace(/\s*Copyright.*/, '')
    .trim();
let wrkVersion = '';
let redisVersion = '';
function preconditions() {
  const problems = [];
  if (needsClowder && !existsSync(join(root, 'dist', 'index.js')))
    problems.push('dist/index.js is missing: run `npm run build` first (or `npm run bench`, which builds)');
  if (!existsSync(APP)) problems.push(`the counter app is missing: ${APP}`);
  if (!existsSync(LUA) || !existsSync(CLIENT))
    problems.push(`the shared workload is not at ${WORKLOAD} (session.lua, client.mjs): pass --workload=DIR`);
  const deps = [
    'express',
    'express-session',
    'connect-redis',
    'redis',
    'fastify',
    '@fastify/session',
    '@fastify/cookie',
  ];
  const missing = deps.filter((d) => !existsSync(join(here, 'node_modules', d, 'package.json')));
  if (missing.length > 0 && measured.some((r) => r.script === 'express.mjs' || r.script === 'fastify.mjs'))
    problems.push(
      `bench/compare's own dependencies are not installed (${missing.join(', ')} missing). From the repository root:\n` +
        '    npm --prefix bench/compare ci --no-audit --no-fund',
    );
  if (needsWrk) {
    const v = versionOf('wrk', ['-v']);
    if (v === undefined)
      problems.push(
        'wrk (the HTTP load generator) is not installed. Install it, e.g.:\n' +
          '    sudo apt-get update && sudo apt-get install -y wrk      (Debian/Ubuntu)\n' +
          '    brew install wrk                                         (macOS)',
      );
    else wrkVersion = wrkLine(v);
  }
  if (needsRedis) {
    const v = versionOf('redis-server', ['--version']);
    if (v === undefined)
      problems.push(
        'redis-server is not installed (the Redis rows start their own, on a free loopback port). Install it, e.g.:\n' +
          '    sudo apt-get update && sudo apt-get install -y redis-server   (Debian/Ubuntu; a system service it may start is not used)\n' +
          '    brew install redis                                            (macOS)\n' +
          '  or leave the Redis rows out: --rows=bare,map,express-mem,fastify-mem,clowder',
      );
    else redisVersion = v.trim();
  }
  if (!existsSync('/proc/self/stat')) problems.push('/proc is needed for CPU time and RSS per process (Linux only)');
  if (problems.length > 0) {
    for (const p of problems) console.error(`bench/compare: ${p}`);
    process.exit(2);
  }
}
preconditions();

// ---- helpers --------------------------------------------------------------------------------------

const fmt = (x, d = 0) =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '-';
const fx = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const log = (...a) => console.log(`[${((performance.now() - T0) / 1000).toFixed(1).padStart(6)} s]`, ...a);

/** Temporary directories of this run (cookies, redis dirs, profiles): removed on the way out. */
const tempDirs = new Set();
function tempDir(prefix) {
  const d = mkdtempSync(join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}
function removeTemp(d) {
  rmSync(d, { recursive: true, force: true });
  tempDirs.delete(d);
}
process.on('exit', () => {
  reap();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\nbench/compare: ${sig}: killing every process this run started`);
    reap();
    process.exit(130);
  });
}
process.on('uncaughtException', (err) => {
  console.error(err);
  reap();
  process.exit(1);
});

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
/** GET http://127.0.0.1:port/path -> { status, body } (status 0 on a socket error). */
function httpGet(port, path, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, body: '', error: e.message }));
  });
}
async function clowderStats(port) {
  const r = await httpGet(port, '/_clowder/stats');
  if (r.status !== 200)
    throw new Error(`GET :${port}/_clowder/stats -> ${r.status} ${r.error ?? r.body.slice(0, 200)}`);
  return JSON.parse(r.body);
}

// ---- processes ------------------------------------------------------------------------------------

/** A server child process (node script from servers/), forked with IPC; `ready` resolves on its 'ready' message. */
class ServerProc {
  constructor(script, spec, { execArgv = [], tag = script } = {}) {
    this.spec = spec;
    this.name = spec.name;
    this.port = spec.port;
    this.tag = tag;
    this.waiting = new Map();
    this.nextId = 1;
    this.stderr = '';
    this.forkedAt = performance.now();
    this.child = fork(join(SERVERS, script), [], {
      cwd: here,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      execArgv,
      env: { ...process.env, BENCH_SERVER: JSON.stringify(spec) },
    });
    live.add(this.child);
    this.pid = this.child.pid;
    const keep = (d) => {
      this.stderr = (this.stderr + d).slice(-4000);
    };
    this.child.stdout.on('data', keep);
    this.child.stderr.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        live.delete(this.child);
        for (const w of this.waiting.values()) w.reject(new Error(`${tag} ${this.name} exited (${code ?? signal})`));
        this.waiting.clear();
        resolve(code ?? signal);
      });
    });
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${tag} ${this.name} not ready within 60 s: ${this.stderr}`)),
        60_000,
      );
      this.child.on('message', (m) => {
        if (m?.type === 'ready') {
          clearTimeout(timer);
          this.readyAt = performance.now();
          resolve(m);
        } else if (m?.type === 'failed') {
          clearTimeout(timer);
          reject(new Error(`${tag} ${this.name} failed to start: ${m.error}`));
        } else if (m?.id !== undefined) {
          const w = this.waiting.get(m.id);
          if (!w) return;
          this.waiting.delete(m.id);
          if (m.ok) w.resolve(m);
          else w.reject(new Error(`${tag} ${this.name}: ${m.error}`));
        }
      });
      this.exited.then((c) => {
        clearTimeout(timer);
        reject(new Error(`${tag} ${this.name} exited (${c}) before it was ready: ${this.stderr}`));
      });
    });
    this.ready.catch(() => {});
  }

  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  call(cmd, params = {}, timeoutMs = 30_000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.tag} ${this.name} did not answer ${cmd} within ${timeoutMs} ms`));
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

  kill(signal = 'SIGKILL') {
    try {
      process.kill(this.pid, signal);
    } catch {}
  }

  /** SIGTERM (the server stops gracefully and exits), SIGKILL after `graceMs`. */
  async stop(graceMs = 8000) {
    if (!this.running) return;
    this.kill('SIGTERM');
    const exited = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!exited) {
      this.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** A redis-server of this run: its own port, its own temp dir, no persistence. */
class RedisProc {
  constructor(port, dir) {
    this.port = port;
    this.name = 'redis';
    this.output = '';
    this.child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--protected-mode',
        'yes',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--daemonize',
        'no',
        '--logfile',
        '',
        '--databases',
        '1',
      ],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    live.add(this.child);
    this.pid = this.child.pid;
    const keep = (d) => {
      this.output = (this.output + d).slice(-4000);
    };
    this.child.stdout.on('data', keep);
    this.child.stderr.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        live.delete(this.child);
        resolve(code ?? signal);
      });
      this.child.on('error', (err) => {
        live.delete(this.child);
        this.output += err.message;
        resolve(-1);
      });
    });
  }

  /** Resolves once the server answers PING. */
  async ready(timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) break;
      const ok = await new Promise((resolve) => {
        const s = connect(this.port, '127.0.0.1');
        let got = '';
        s.setTimeout(500, () => s.destroy());
        s.on('connect', () => s.write('PING\r\n'));
        s.on('data', (d) => {
          got += d;
          if (got.includes('\r\n')) s.end();
        });
        s.on('close', () => resolve(got.startsWith('+PONG')));
        s.on('error', () => {});
      });
      if (ok) return;
      await sleep(50);
    }
    throw new Error(`redis-server on port ${this.port} did not answer PING: ${this.output}`);
  }

  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      process.kill(this.pid, 'SIGTERM');
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

async function stopAll(procs) {
  await Promise.all(procs.map((p) => p.stop().catch(() => {})));
}

let domainSeq = 0;
const NAMES = ['n1', 'n2', 'n3', 'n4'];

/** Starts a clowder cluster of n nodes one after the other; resolves when each sees all the others. */
async function startClowder(
  n,
  send,
  { execArgv = [], tag = 'clowder', script = 'clowder.mjs', ownership, readOnlyFilter, visibleLog } = {},
) {
  const ports = await freePorts(2 * n);
  const domain = `bench-compare-${process.pid}-${domainSeq++}`;
  const members = Array.from({ length: n }, (_, i) => `127.0.0.1:${ports[2 * i + 1]}`);
  const nodes = [];
  try {
    for (let i = 0; i < n; i++) {
      const p = new ServerProc(
        script,
        {
          name: NAMES[i],
          port: ports[2 * i],
          clusterPort: ports[2 * i + 1],
          members,
          domain,
          send,
          app: APP,
          ownership,
          readOnlyFilter,
          visibleLog,
        },
        { execArgv, tag },
      );
      nodes.push(p);
      await p.ready;
    }
    await waitMembers(nodes, n - 1, 20_000);
  } catch (err) {
    await stopAll(nodes);
    throw err;
  }
  return nodes;
}

/** Polls /_clowder/stats of every node until each counts `want` members. */
async function waitMembers(nodes, want, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await Promise.all(nodes.map(async (p) => (await clowderStats(p.port)).channel.membership.members));
    if (counts.every((c) => c === want)) return;
    if (Date.now() > deadline)
      throw new Error(`clowder members after ${timeoutMs} ms: ${counts.join('/')} (want ${want} each)`);
    await sleep(25);
  }
}

// ---- rows -----------------------------------------------------------------------------------------

function wrk(ports, cookies, seconds) {
  const threads = Math.max(ports.length, 2);
  const argv = [
    `-t${threads}`,
    `-c${CONNECTIONS}`,
    `-d${seconds}s`,
    '--timeout',
    '5s',
    '-s',
    LUA,
    `http://127.0.0.1:${ports[0]}`,
    '--',
    cookies,
    String(PAYLOAD),
    String(READ_PCT),
  ];
  const env = { ...process.env };
  if (ports.length > 1) env.WRK_PORTS = ports.join(',');
  else delete env.WRK_PORTS;
  return run('wrk', argv, (seconds + 20) * 1000, env).then((r) => ({ ...r, threads }));
}

/** Starts the processes of a row; returns { servers, redis }. */
async function startRow(row, tmp, profDir) {
  if (row.clowder) {
    const execArgv = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
    // /app/read declared read-only, as an application configures its read endpoints (only the
    // read-mostly mix and the count check send it).
    const servers = await startClowder(row.nodes, row.send, {
      execArgv,
      tag: row.id,
      script: row.script,
      readOnlyFilter: READ_ONLY,
    });
    return { servers, redis: undefined };
  }
  if (row.replicated)
    return { servers: await startMapReplicated(row.nodes, { tag: row.id, profDir }), redis: undefined };
  const ports = await freePorts(row.nodes + (row.store === 'redis' ? 1 : 0));
  let redis;
  const servers = [];
  try {
    if (row.store === 'redis') {
      const dir = join(tmp, `redis-${row.id}`);
      mkdirSync(dir, { recursive: true });
      redis = new RedisProc(ports[row.nodes], dir);
      await redis.ready();
    }
    for (let i = 0; i < row.nodes; i++) {
      const spec = { name: NAMES[i], port: ports[i], store: row.store, redisPort: redis?.port, batch: row.batch };
      const execArgv = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
      servers.push(new ServerProc(row.script, spec, { tag: row.id, execArgv }));
    }
    await Promise.all(servers.map((s) => s.ready));
  } catch (err) {
    await stopAll(servers);
    await redis?.stop();
    throw err;
  }
  return { servers, redis };
}

/**
 * `n` Map session servers, each pushing its changes to the others (map-peers.mjs), once every one
 * is connected to every other. visibleLog: peers log when they applied each count (the lag probe).
 */
async function startMapReplicated(n, { tag, profDir, visibleLog = false }) {
  const ports = await freePorts(2 * n);
  const repl = (i) => `127.0.0.1:${ports[2 * i + 1]}`;
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const spec = {
        name: NAMES[i],
        port: ports[2 * i],
        replPort: ports[2 * i + 1],
        peers: Array.from({ length: n }, (_, j) => j)
          .filter((j) => j !== i)
          .map(repl),
        visibleLog,
      };
      const execArgv = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
      servers.push(new ServerProc('map.mjs', spec, { tag, execArgv }));
    }
    await Promise.all(servers.map((s) => s.ready));
    const deadline = Date.now() + 10_000;
    for (const s of servers) {
      while ((await httpGet(s.port, '/app/health')).body?.includes(`peers=${n - 1}`) !== true) {
        if (Date.now() > deadline) throw new Error(`${tag}: ${s.name} did not connect to its ${n - 1} peers`);
        await sleep(20);
      }
    }
  } catch (err) {
    await stopAll(servers);
    throw err;
  }
  return servers;
}

/** Sum of counts read through every server: retries (async replication settling) until all agree. */
async function replicaSums(servers, cookies, settleMs) {
  let sums = [];
  for (let attempt = 0; attempt < 6; attempt++) {
    sums = [];
    for (const s of servers) sums.push((await client('sumcounts', { port: s.port, cookies })).sum);
    if (sums.every((x) => x === sums[0])) return { sums, agree: true };
    await sleep(settleMs);
  }
  return { sums, agree: false };
}

async function measureRow(row, tmp, profile) {
  // --profile: the clowder rows, and the Map-session row as the baseline to read them against.
  const profDir = profile && (row.clowder || row.id === 'map') ? tempDir(`clowder-compare-prof-${row.id}-`) : undefined;
  const { servers, redis } = await startRow(row, tmp, profDir);
  const procs = redis ? [...servers, redis] : servers;
  const ports = servers.map((s) => s.port);
  const cookies = join(tmp, `cookies-${row.id}.txt`);
  let out;
  try {
    const mk = await client('mksessions', {
      port: ports[0],
      n: SESSIONS,
      out: cookies,
      ...(row.counts === false ? { 'nocookie-ok': 1 } : {}),
    });
    if (mk.sessions !== SESSIONS) throw new Error(`mksessions made ${mk.sessions} of ${SESSIONS} sessions: ${mk.line}`);
    if (WARMUP_S > 0) await wrk(ports, cookies, WARMUP_S);
    if (servers.length > 1) await sleep(300); // let replication of the warm-up settle
    const before = await client('sumcounts', { port: ports[0], cookies });
    const pids = procs.map((p) => p.pid);
    // clowder: the managers' request counters give the exact number of requests served in the run
    // (wrk does not count those still in flight when it stops); summed over every node.
    const served = async () =>
      (await Promise.all(servers.map((s) => clowderStats(s.port)))).reduce(
        // Reads on /app/read (read-only) are counted apart, and so are requests whose client went
        // away while they waited for the session (wrk's stop): what ran here are increments.
        (a, st) => {
          const m = st.sessions?.[0];
          return a + (m?.requests ?? NaN) - (m?.readOnlyRequests ?? 0) - (m?.requestsAbandoned ?? 0);
        },
        0,
      );
    const served0 = row.clowder ? await served() : undefined;
    const cpu0 = pids.map(cpuSeconds);
    const m0 = machineTicks();
    const w = await wrk(ports, cookies, DURATION_S);
    const m1 = machineTicks();
    const cpu1 = pids.map(cpuSeconds);
    const rss = pids.map(rssBytes);
    const resultLine = w.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (!resultLine) throw new Error(`wrk printed no RESULT line (code ${w.code}): ${w.stdout}\n${w.stderr}`);
    const r = kv(resultLine.slice(7));
    const non2xx = Number(/Non-2xx or 3xx responses:\s*(\d+)/.exec(w.stdout)?.[1] ?? 0);
    if (servers.length > 1) await sleep(500); // async replication: let the last deltas arrive
    const served1 = row.clowder ? await served() : undefined;
    const after = await client('sumcounts', { port: ports[0], cookies });
    const cpuPer = cpu1.map((c, i) => c - cpu0[i]);
    const cpuTotal = cpuPer.reduce((a, b) => a + b, 0);
    const socketErrors = r.err_connect + r.err_read + r.err_write + r.err_timeout;
    out = {
      row: row.id,
      label: row.label,
      processes: procs.map((p) => p.name).join('+'),
      wrkThreads: w.threads,
      requests: r.requests,
      durationS: r.duration_s,
      rps: r.rps,
      p50: r.p50_ms,
      p90: r.p90_ms,
      p99: r.p99_ms,
      max: r.max_ms,
      non2xx: Math.max(r.err_status, non2xx),
      socketErrors,
      errors: Math.max(r.err_status, non2xx) + socketErrors,
      wrkResult: resultLine,
      cpuPerProcS: Object.fromEntries(procs.map((p, i) => [p.name, +cpuPer[i].toFixed(3)])),
      cpuUsPerReq: (cpuTotal / r.requests) * 1e6,
      serverCores: cpuTotal / r.duration_s,
      rssBytes: rss.reduce((a, b) => a + b, 0),
      rssPerProc: Object.fromEntries(procs.map((p, i) => [p.name, rss[i]])),
      machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total),
      sumBefore: before.sum,
      sumAfter: after.sum,
      lostSessions: after.lost_sessions,
      readErrors: before.errors + after.errors,
    };
    if (row.counts !== false) {
      const counted = after.sum - before.sum;
      // Write-only: every acknowledged request is an increment. Mixed: session-mix.lua counted the
      // acknowledged counter responses.
      const writes = READ_PCT > 0 ? r.writes : r.requests;
      if (!Number.isFinite(writes)) throw new Error(`wrk printed no writes= count: ${resultLine}`);
      const acknowledged = READ_PCT > 0 ? writes : r.requests - out.non2xx;
      out.writes = writes;
      out.counted = counted;
      out.rawDiff = counted - writes; // legit: 0..connections (served, but still in flight for wrk)
      out.lost = Math.max(0, acknowledged - counted);
      if (row.clowder) {
        // Exact: every increment the nodes ran the application for against the increments
        // counted. The verdict uses it beside the workload's definition (acknowledged - counted,
        // which in-flight requests at wrk's stop can hide losses from).
        out.served = served1 - served0;
        out.lostExact = out.served - counted;
      }
      if (servers.length > 1) {
        const rep = await replicaSums(servers, cookies, 500);
        out.replicaSums = rep.sums;
        out.replicasAgree = rep.agree;
      }
      if (row.clowder) {
        const st = await Promise.all(servers.map((s) => clowderStats(s.port)));
        out.clowder = st.map((s) => {
          const m = s.sessions?.[0] ?? {};
          const c = m.counters ?? m;
          return {
            sessions: m.activeSessions,
            conflicts: c.conflicts,
            ownershipMoves: c.ownershipMoves,
            ownershipTimeouts: c.ownershipTimeouts,
            ownershipForced: c.ownershipForced,
            staleDeltas: c.staleDeltas,
            replicationErrors: c.replicationErrors,
            repairs: c.repairs,
            members: s.channel?.membership?.members,
          };
        });
      }
    }
  } finally {
    await stopAll(procs);
  }
  if (profDir) {
    out.profile = summarizeProfiles(profDir, 15);
    if (process.env.KEEP_PROF) cpSync(profDir, process.env.KEEP_PROF, { recursive: true });
    removeTemp(profDir);
  }
  return out;
}

// ---- profiles -------------------------------------------------------------------------------------

function shortUrl(url) {
  if (!url) return '';
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  return path.startsWith('/') ? relative(root, path) : path;
}

const frameKey = ({ functionName, url, lineNumber }) => {
  const where = shortUrl(url);
  return `${functionName || '(anonymous)'}${where ? `  ${where}:${lineNumber + 1}` : ''}`;
};

/**
 * Top self-time functions over every .cpuprofile in dir (all of a row's nodes together). For the
 * top native functions (no script, e.g. writev), also the nearest library (dist/) or app frame
 * that called them, so a syscall's time can be put on the code that asked for it.
 */
function summarizeProfiles(dir, top) {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const fns = new Map();
  const callers = new Map(); // native fn key -> Map(caller key -> µs)
  let total = 0;
  const samplesOf = [];
  for (const f of files) {
    const prof = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    const parent = new Map();
    for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const { samples, timeDeltas } = prof;
    for (let i = 0; i < samples.length; i++) {
      const dt = timeDeltas[i + 1] ?? 0;
      const cf = byId.get(samples[i]).callFrame;
      if (cf.functionName === '(idle)' || cf.functionName === '(program)') continue;
      const key = frameKey(cf);
      fns.set(key, (fns.get(key) ?? 0) + dt);
      total += dt;
      if (!cf.url) samplesOf.push({ key, id: samples[i], dt, byId, parent });
    }
  }
  const ranked = [...fns].sort((a, b) => b[1] - a[1]).slice(0, top);
  const natives = new Set(ranked.slice(0, 5).map(([k]) => k));
  for (const s of samplesOf) {
    if (!natives.has(s.key)) continue;
    let id = s.parent.get(s.id);
    let caller = '(no library frame)';
    while (id !== undefined) {
      const cf = s.byId.get(id).callFrame;
      if (cf.url && (cf.url.includes('/dist/') || cf.url.includes('/examples/') || cf.url.includes('/servers/'))) {
        caller = frameKey(cf);
        break;
      }
      id = s.parent.get(id);
    }
    if (!callers.has(s.key)) callers.set(s.key, new Map());
    const m = callers.get(s.key);
    m.set(caller, (m.get(caller) ?? 0) + s.dt);
  }
  return {
    files: files.length,
    sampledS: +(total / 1e6).toFixed(3),
    top: ranked.map(([fn, us]) => ({
      fn,
      ms: +(us / 1000).toFixed(1),
      pct: +((100 * us) / total).toFixed(1),
      ...(callers.has(fn)
        ? {
            calledFrom: [...callers.get(fn)]
              .sort((a, b) => b[1] - a[1])
              .slice(0, 4)
              .map(([c, cus]) => ({ caller: c, pct: +((100 * cus) / total).toFixed(1) })),
          }
        : {}),
    })),
  };
}

function printProfile(p, print) {
  for (const f of p.top) {
    print(`    ${String(f.pct).padStart(5)} %  ${String(f.ms).padStart(9)} ms  ${f.fn}`);
    for (const c of f.calledFrom ?? []) print(`                       ${String(c.pct).padStart(5)} % via ${c.caller}`);
  }
}

// ---- lag, failure detection, state transfer ---------------------------------------------------------

/** Creates the probe's sessions on `port` (cookies into `file`) and lets their replication settle. */
async function lagSessions(port, file) {
  const mk = await client('mksessions', { port, n: SESSIONS, out: file });
  if (mk.sessions !== SESSIONS) throw new Error(`mksessions made ${mk.sessions} of ${SESSIONS}`);
  await sleep(300);
  return file;
}

const LAG_CLIENT = join(here, 'lag-client.mjs');
let lagSeq = 0;

/**
 * The shared workload's lag probe (mirrored by lag-client.mjs): write on `writePort`, read on
 * `readPort` at once, 1000 probes after --warmup seconds of the same probes (as wrk warms up a
 * row: the client and the servers are past their JIT compilation); logged as `what`. With
 * `reader` (the clowder node behind `readPort`, started with visibleLog), also the replication lag
 * itself: see {@link visibility}.
 */
async function lagProbe(writePort, readPort, cookies, what, reader) {
  const out = `${cookies}.${lagSeq++}.writes.json`;
  const argv = [LAG_CLIENT, '--write-port', writePort, '--read-port', readPort, '--cookies', cookies];
  argv.push('--n', 1000, '--warmup-ms', WARMUP_S * 1000, '--out', out);
  const r = await run(process.execPath, argv, 120_000 + WARMUP_S * 1000);
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
function visibility(writes, applied) {
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
function visibleOf(list, key = 'visible') {
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
const visibleText = (v, cold) =>
  v === undefined
    ? ''
    : `; visible on n2 after the client had n1's answer: p50 ${v.p50} ms, p99 ${v.p99} ms (max ${v.max} ms; ${v.aheadPct} % applied before the answer reached the client; ${v.missing} of ${v.writes} writes never seen${v.rounds?.length > 1 ? `; rounds p50/p99 ${v.rounds.join(', ')}` : ''})${cold === undefined ? '' : `; cold (the warm-up's first ${Math.round(cold.writes / Math.max(1, cold.rounds?.length ?? 1))} probes, every process just started): p50 ${cold.p50} ms, p99 ${cold.p99} ms${cold.rounds?.length > 1 ? ` (rounds ${cold.rounds.join(', ')})` : ''}`}`;
/** The lag probe (write on A, read on B) on a fresh async cluster of `n` nodes started with `options`. */
async function lagOnCluster(tmp, tag, options, n = 3) {
  const nodes = await startClowder(n, 'async', { tag: `lag/${tag}`, visibleLog: true, ...options });
  try {
    const [a, b] = nodes;
    const cookies = await lagSessions(a.port, join(tmp, `cookies-lag-${tag}.txt`));
    return await lagProbe(a.port, b.port, cookies, `A->B, ${tag}`, b);
  } finally {
    await stopAll(nodes);
  }
}

async function runLagFailover(tmp) {
  const out = {};
  // /app/read declared read-only (sessions.readOnlyFilter), as an application with read endpoints
  // configures it: B serves the read from its replica without taking the session over, so the
  // probe measures how far replication trails the client's next request.
  const nodes = await startClowder(3, 'async', {
    tag: 'lag/failover',
    readOnlyFilter: READ_ONLY,
    visibleLog: true,
  });
  const [a, b, c] = nodes;
  try {
    if (RUN_EXTRAS.includes('lag')) {
      const cookies = await lagSessions(a.port, join(tmp, 'cookies-lag.txt'));
      out.lag = await lagProbe(a.port, b.port, cookies, 'A->B', b);
      // The floor: the same probe reading on A itself (no replication involved): what a read
      // right after a write costs on this machine at all.
      const floor = await lagProbe(a.port, a.port, cookies, 'A->A (floor)');
      out.lag.floorP50 = floor.p50;
      out.lag.floorP99 = floor.p99;
      // The machine's floors: the same probe against bare node:http (no sessions at all), reading
      // on the server written to, and on a second, idle one (as B is: its process must wake up).
      const barePorts = await freePorts(2);
      const bares = barePorts.map(
        (port, i) => new ServerProc('bare.mjs', { name: `bare${i + 1}`, port }, { tag: 'lag-floor' }),
      );
      try {
        await Promise.all(bares.map((b) => b.ready));
        const b0 = await lagProbe(barePorts[0], barePorts[0], cookies, 'bare node:http, one server (machine floor)');
        out.lag.bareP50 = b0.p50;
        out.lag.bareP99 = b0.p99;
        const b2 = await lagProbe(barePorts[0], barePorts[1], cookies, 'bare node:http, write on one, read on another');
        out.lag.bare2P50 = b2.p50;
        out.lag.bare2P99 = b2.p99;
      } finally {
        await Promise.all(bares.map((b) => b.stop()));
      }
      // The floor of any replication between processes: a loopback message between two idle ones.
      const wake = await run(process.execPath, [join(here, 'wake-floor.mjs'), '--n', 2000], 60_000);
      if (wake.code !== 0) throw new Error(`wake-floor.mjs failed (${wake.code}): ${wake.stderr}`.trim());
      const wakeLine = wake.stdout.trim().split('\n').pop();
      log(`lag floor, one loopback message between two idle processes: ${wakeLine}`);
      out.lag.wake = kv(wakeLine);
      // The replication floor: Map session servers that push each change to their peers and do
      // nothing else (map-peers.mjs), the same probe and the same visibility log.
      const maps = await startMapReplicated(3, { tag: 'lag-floor-map', visibleLog: true });
      try {
        const mc = await lagSessions(maps[0].port, join(tmp, 'cookies-lag-map.txt'));
        out.lag.map = await lagProbe(maps[0].port, maps[1].port, mc, 'Map sessions pushing to 2 peers', maps[1]);
      } finally {
        await stopAll(maps);
      }
      // The same probe where /app/read is an ordinary request: B takes the session over from A
      // (ACQUIRE/GRANT) before it reads, and A takes it back for the next write.
      out.lag.handover = await lagOnCluster(tmp, 'hand-over', {});
      // ownership none (Tomcat's behaviour): every request is served from the local replica.
      out.lag.none = await lagOnCluster(tmp, 'ownership-none', { ownership: 'none' });
      // Two nodes, /app/read read-only: on this 2-core machine a third node waking up to apply
      // each write competes with the client and B for the cores; this shows how much that costs.
      out.lag.two = await lagOnCluster(tmp, 'read-only-2-nodes', { readOnlyFilter: READ_ONLY }, 2);
    }
    if (RUN_EXTRAS.includes('failover')) {
      const watchers = [a, b];
      const base = await Promise.all(
        watchers.map(async (p) => (await clowderStats(p.port)).channel.membership.members),
      );
      const t0 = performance.now();
      c.kill('SIGKILL');
      const seen = await Promise.all(
        watchers.map(async (p, i) => {
          const deadline = t0 + 15_000;
          let polls = 0;
          while (performance.now() < deadline) {
            const tick = performance.now();
            polls++;
            const st = await clowderStats(p.port);
            if (st.channel.membership.members < base[i]) return { node: p.name, ms: performance.now() - t0, polls };
            const wait = 5 - (performance.now() - tick);
            if (wait > 0) await sleep(wait);
          }
          return { node: p.name, ms: NaN, polls, timedOut: true };
        }),
      );
      out.failover = {
        killed: c.name,
        detect: seen,
        maxMs: Math.max(...seen.map((s) => s.ms)),
        pollMs: 5,
      };
      log(`failure detection after SIGKILL of ${c.name}: ${seen.map((s) => `${s.node} ${fx(s.ms, 1)} ms`).join(', ')}`);
    }
  } finally {
    await stopAll(nodes);
  }
  return out;
}

async function runTransfer(profile) {
  const ports = await freePorts(4);
  const domain = `bench-compare-${process.pid}-${domainSeq++}`;
  const members = [`127.0.0.1:${ports[1]}`, `127.0.0.1:${ports[3]}`];
  const spec = (i) => ({
    name: NAMES[i],
    port: ports[2 * i],
    clusterPort: ports[2 * i + 1],
    members,
    domain,
    send: 'async',
    app: APP,
  });
  const profDirs = profile ? [0, 1].map((i) => tempDir(`clowder-compare-prof-transfer-${NAMES[i]}-`)) : [];
  const execArgv = (i) => (profile ? ['--cpu-prof', `--cpu-prof-dir=${profDirs[i]}`] : []);
  const a = new ServerProc('clowder.mjs', spec(0), { tag: 'transfer', execArgv: execArgv(0) });
  const nodes = [a];
  let out;
  try {
    await a.ready;
    const filled = await a.call('fill', { n: TRANSFER_SESSIONS, payload: PAYLOAD }, 300_000);
    log(`transfer: A holds ${fmt(filled.sessions)} sessions (filled in ${fmt(filled.ms)} ms); starting B`);
    const b = new ServerProc('clowder.mjs', spec(1), { tag: 'transfer', execArgv: execArgv(1) });
    nodes.push(b);
    const ready = await b.ready;
    const st = (await clowderStats(b.port)).sessions[0].stateTransfer;
    out = {
      sessions: TRANSFER_SESSIONS,
      fillMs: filled.ms,
      startMs: ready.startMs,
      forkToReadyMs: b.readyAt - b.forkedAt,
      transferMs: st.durationMs,
      state: st.state,
      received: st.sessions,
      bytes: st.bytes,
      chunks: st.chunks,
    };
    out.complete = out.state === 'done' && out.received === TRANSFER_SESSIONS;
    log(
      `transfer: B stateTransfer ${fmt(out.transferMs)} ms (${out.state}, ${fmt(out.received)} sessions, ` +
        `${fmt(out.bytes / 1048576, 1)} MiB, ${out.chunks} chunks); B start() -> ready ${fmt(out.startMs)} ms`,
    );
  } finally {
    await stopAll(nodes);
    if (profile) {
      const profiles = {};
      for (const [i, dir] of profDirs.entries()) {
        try {
          profiles[`${NAMES[i]} (${i === 0 ? 'donor: fill, then send' : 'joiner'})`] = summarizeProfiles(dir, 12);
        } catch {}
        removeTemp(dir);
      }
      if (out) out.profile = profiles;
    }
  }
  if (out?.profile) {
    for (const [who, p] of Object.entries(out.profile)) {
      console.log(`  top self time, transfer ${who} (${p.sampledS} s sampled):`);
      printProfile(p, console.log);
    }
  }
  return out;
}

// ---- report ---------------------------------------------------------------------------------------

function machine() {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    wrk: wrkVersion || wrkLine(versionOf('wrk', ['-v'])),
    redis: redisVersion || (versionOf('redis-server', ['--version']) ?? '').trim(),
    clkTck: CLK_TCK,
    loadavgAtStart: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

const REDIS_ROWS = ['express-redis', 'express-redis2', 'fastify-redis'];

/** Sets each result's x Map / x Redis against the Map row and the fastest Redis row of the same list. */
function addRatios(results) {
  const { map, fastestRedis } = fastestRefs(results);
  const mapBatched = results.find((r) => r.row === 'map-batched');
  const mapReplicated = results.find((r) => r.row === 'map-replicated');
  for (const r of results) {
    r.xMapBatched = mapBatched ? r.rps / mapBatched.rps : NaN;
    r.xMapReplicated = mapReplicated ? r.rps / mapReplicated.rps : NaN;
    r.xMap = map ? r.rps / map.rps : NaN;
    r.xRedis = fastestRedis ? r.rps / fastestRedis.rps : NaN;
  }
  return { map, fastestRedis };
}

/** The Map row and the fastest Redis row of aggregated results (for naming the references). */
function fastestRefs(results) {
  const map = results.find((r) => r.row === 'map');
  const redis = results.filter((r) => REDIS_ROWS.includes(r.row));
  return { map, fastestRedis: redis.length ? redis.reduce((a, b) => (b.rps > a.rps ? b : a)) : undefined };
}

/**
 * One result per row from its rounds (ratios already set per round): the median round's figures,
 * with req/s and the ratios replaced by medians, and the worst round's lost increments and errors.
 */
function aggregate(runs) {
  const ok = runs.filter((r) => !r.na);
  if (ok.length === 0) return runs[runs.length - 1];
  const byRps = [...ok].sort((a, b) => a.rps - b.rps);
  const out = { ...byRps[(byRps.length - 1) >> 1] };
  out.rounds = ok.length;
  out.runs = ok.map((r) => r.rps);
  out.rps = median(out.runs);
  out.xMap = median(ok.map((r) => r.xMap));
  out.xMapBatched = median(ok.map((r) => r.xMapBatched));
  out.xMapReplicated = median(ok.map((r) => r.xMapReplicated));
  out.xRedis = median(ok.map((r) => r.xRedis));
  out.errors = Math.max(...ok.map((r) => r.errors));
  if (ok.every((r) => r.lost !== undefined)) {
    const worst = ok.reduce((a, b) => (b.lost > a.lost ? b : a));
    out.lost = worst.lost;
    out.rawDiff = worst.rawDiff;
    // The exact figure (clowder rows): its worst round.
    if (ok.every((r) => r.lostExact !== undefined)) {
      const exact = ok.reduce((a, b) => (b.lostExact > a.lostExact ? b : a));
      out.lostExact = exact.lostExact;
      out.served = exact.served;
    }
  }
  if (ok.some((r) => r.replicasAgree === false)) {
    const bad = ok.find((r) => r.replicasAgree === false);
    out.replicasAgree = false;
    out.replicaSums = bad.replicaSums;
  }
  if (ok.length < runs.length) out.failedRounds = runs.length - ok.length;
  return out;
}

function targets(results, extras, refs) {
  const t = [];
  const add = (name, pass, detail) => t.push({ name, pass, detail });
  const row = (id) => results.find((r) => r.row === id);
  const { map, fastestRedis } = refs;
  const as = row('clowder-async');
  const off = row('clowder-off');
  const sy = row('clowder-sync');
  const redisName = fastestRedis ? `${fastestRedis.row} ${fmt(fastestRedis.rps)}` : '';
  if (as && fastestRedis)
    add(
      'clowder async 3 nodes >= 2 x fastest Redis row',
      as.xRedis >= 2,
      `${fx(as.xRedis)} x (${fmt(as.rps)} vs ${redisName} req/s)`,
    );
  if (as && map) add('clowder async 3 nodes >= 0.6 x Map sessions', as.xMap >= 0.6, `${fx(as.xMap)} x`);
  if (off && map) add('clowder replication off >= 0.9 x Map sessions', off.xMap >= 0.9, `${fx(off.xMap)} x`);
  const mb = row('map-batched');
  if (mb && (as || off))
    add(
      'like for like: against map-batched (the Map server ending responses at the end of the turn, as clowder does)',
      null,
      [off && `replication off ${fx(off.xMapBatched)} x`, as && `async 3 nodes ${fx(as.xMapBatched)} x`]
        .filter(Boolean)
        .join(', '),
    );
  const mr = row('map-replicated');
  if (mr && as)
    add(
      'like for like: async 3 nodes against map-replicated (Map servers pushing each change to their peers, no ownership, no checks)',
      null,
      `${fx(as.xMapReplicated)} x (${fmt(as.rps)} vs ${fmt(mr.rps)} req/s; map-replicated lost ${mr.lost} increments${mr.replicasAgree === false ? ' and its replicas differ' : ''}, clowder ${as.lost})`,
    );
  if (sy && fastestRedis)
    add('clowder sync 3 nodes >= 1.2 x fastest Redis row', sy.xRedis >= 1.2, `${fx(sy.xRedis)} x`);
  for (const r of results.filter((x) => x.row.startsWith('clowder'))) {
    const agree = r.replicasAgree !== false;
    add(
      `0 lost increments: ${r.row}`,
      r.lost === 0 && (r.lostExact ?? 0) === 0 && agree,
      `${r.lost} lost (raw after-before-increments ${r.rawDiff}; ran-counted, worst round: ${r.lostExact} of ${r.served} run)${agree ? '' : `; replica sums differ: ${r.replicaSums.join('/')}`}`,
    );
  }
  if (extras.lag) {
    const v = extras.lag.visible;
    const floor = extras.lag.map?.visible;
    add(
      'replication lag p99 <= 1 ms (async 3 nodes, /app/read read-only: the write on n1 visible on n2 within 1 ms of the client having its answer, p99; >= 99 % of immediate reads on n2 fresh)',
      v !== undefined && v.p99 <= 1 && v.missing === 0 && extras.lag.stalePct <= 1 && extras.lag.errors === 0,
      `visible on n2 p50 ${v?.p50} / p99 ${v?.p99} ms, ${v?.missing} never seen${extras.lag.visibleCold ? `; cold, the warm-up's first probes: p99 ${extras.lag.visibleCold.p99} ms` : ''}${floor ? ` (the replication floor, Map servers pushing to their peers: p50 ${floor.p50} / p99 ${floor.p99} ms)` : ''}${extras.lag.wake ? `; a loopback message between two idle processes: p50 ${extras.lag.wake.p50} / p99 ${extras.lag.wake.p99} ms` : ''}; the client's read on n2 right after: ${fx(extras.lag.stalePct, 1)} % stale, p50 ${extras.lag.p50} / p99 ${extras.lag.p99} ms (that read's own floors: on n1 itself p50 ${extras.lag.floorP50} / p99 ${extras.lag.floorP99} ms; bare node:http p50 ${extras.lag.bareP50} / p99 ${extras.lag.bareP99} ms, written on one bare server and read on another p50 ${extras.lag.bare2P50} / p99 ${extras.lag.bare2P99} ms)`,
    );
  }
  if (extras.failover)
    add(
      'failure detection after SIGKILL <= 1 s',
      extras.failover.maxMs <= 1000,
      `${extras.failover.detect.map((s) => `${s.node} ${fx(s.ms, 1)} ms`).join(', ')}`,
    );
  if (extras.transfer)
    add(
      `state transfer of ${fmt(extras.transfer.sessions)} sessions <= 3 s`,
      extras.transfer.transferMs <= 3000 && extras.transfer.complete,
      `${fmt(extras.transfer.transferMs)} ms (B start() -> ready ${fmt(extras.transfer.startMs)} ms)${extras.transfer.complete ? '' : ' INCOMPLETE'}`,
    );
  return t;
}

function markdown(info, startedAt, results, extras, tgs, refs) {
  const L = [];
  L.push(`## clowder comparison benchmark, ${startedAt}`, '');
  L.push(
    `${info.cpuModel}, ${info.cores} cores, ${info.memGiB} GiB, node ${info.node}, ${info.platform}; ${info.wrk || 'wrk -'}; ` +
      `${info.redis ? info.redis.replace(/ sha=\S+| malloc=\S+| bits=\S+| build=\S+/g, '') : 'redis -'}; load average at start ${info.loadavgAtStart.join(' ')}.`,
    '',
  );
  L.push(
    `Workload: the counter app (../shared/workload), ${SESSIONS} sessions, \`wrk -t2 -c${CONNECTIONS} -d${DURATION_S}s --timeout 5s -s ${READ_PCT > 0 ? 'bench/compare/session-mix.lua' : 'session.lua'} -- cookies ${PAYLOAD} ${READ_PCT}\` ` +
      `(${READ_PCT > 0 ? `${READ_PCT} % GET /app/read, the rest increments (lost = acknowledged increments, counted by the script, minus the sessions' growth); clowder nodes declare /app/read read-only (readOnlyFilter ${READ_ONLY})` : 'write-only'}, 1 KiB payload; -t<n> with WRK_PORTS for rows of more than two servers) after a ${WARMUP_S} s warm-up; ${REPS} round(s), every row once per round (req/s, x Map and x Redis: medians, the ratios taken within each round; the other columns: the row's median round; lost and errors: its worst round). ` +
      `CPU = utime+stime of every server process and redis-server during the measured run, per request; RSS = their sum at its end. ` +
      `x Map / x Redis = req/s over the Map-session row / the fastest Redis-backed row${refs.fastestRedis ? ` (${refs.fastestRedis.row})` : ''}. ` +
      'lost = acknowledged increments missing from the sessions (raw = after - before - requests; 0..connections is requests still in flight when wrk stopped, ' +
      'which can hide up to that many lost ones; clowder rows also give the exact figure, which the 0-lost target uses too: increments the nodes ran the application for (requests their session managers began, minus reads and requests whose client went away while they waited for the session) minus increments counted).',
    '',
  );
  if (results.length > 0) {
    L.push(
      '| row | processes | req/s | x Map | x Redis | p50 ms | p99 ms | errors | lost (raw) | CPU µs/req | RSS MiB | machine busy | rounds (req/s) |',
    );
    L.push('|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|');
  }
  for (const r of results) {
    if (r.na) {
      L.push(`| ${r.row}: ${r.label} | - | ${r.na} | | | | | | | | | | |`);
      continue;
    }
    const lost =
      r.lost === undefined
        ? 'n/a'
        : `${fmt(r.lost)} (${r.rawDiff >= 0 ? '+' : ''}${fmt(r.rawDiff)}${r.lostExact !== undefined ? `; ran-counted ${fmt(r.lostExact)}` : ''})`;
    L.push(
      `| ${r.row}: ${r.label} | ${r.processes} | ${fmt(r.rps)} | ${fx(r.xMap)} | ${fx(r.xRedis)} | ${fx(r.p50)} | ${fx(r.p99)} | ${fmt(r.errors)} | ${lost}${r.replicasAgree === false ? ' replicas differ' : ''} | ${fx(r.cpuUsPerReq, 1)} | ${fx(r.rssBytes / 1048576, 0)} | ${fx(100 * r.machineBusy, 0)} % | ${(r.runs ?? [r.rps]).map((x) => fmt(x)).join(' / ')}${r.failedRounds ? ` (${r.failedRounds} failed)` : ''} |`,
    );
  }
  const cl = results.filter((r) => r.clowder);
  if (cl.length > 0) {
    L.push('', "clowder per node after the row's median round (DeltaManager counters):", '');
    for (const r of cl)
      L.push(
        `- ${r.row}: ${r.clowder.map((n, i) => `n${i + 1} sessions ${n.sessions}, conflicts ${n.conflicts}, ownership moves ${n.ownershipMoves} (timeouts ${n.ownershipTimeouts}, forced ${n.ownershipForced}), staleDeltas ${n.staleDeltas}, replicationErrors ${n.replicationErrors}, repairs ${n.repairs}`).join('; ')}` +
          (r.replicaSums ? `; sums of counts per node ${r.replicaSums.join(' / ')}` : ''),
      );
  }
  if (extras.lag || extras.failover || extras.transfer) {
    L.push('', '| measurement | result |', '|:---|:---|');
    if (extras.lag)
      L.push(
        `| replication lag, async 3 nodes, /app/read declared read-only (sessions.readOnlyFilter ${READ_ONLY}; the shared lag probe, mirrored by lag-client.mjs: ${extras.lag.probes} probes after ${WARMUP_S} s of the same probes as a warm-up, write on n1, read on n2 at once) | ${extras.lag.stale} stale (${fx(extras.lag.stalePct, 1)} %), read-after-write p50 ${extras.lag.p50} ms, p99 ${extras.lag.p99} ms, ${extras.lag.errors} errors; floor (the same probe reading on n1 itself) p50 ${extras.lag.floorP50} ms, p99 ${extras.lag.floorP99} ms; bare node:http (the machine's floor for this probe) p50 ${extras.lag.bareP50} ms, p99 ${extras.lag.bareP99} ms, written on one bare server and read on another p50 ${extras.lag.bare2P50} ms, p99 ${extras.lag.bare2P99} ms${extras.lag.rounds?.length > 1 ? `; rounds p50/p99 ${extras.lag.rounds.map(([a, b]) => `${a}/${b}`).join(', ')}` : ''}${visibleText(extras.lag.visible, extras.lag.visibleCold)} |`,
      );
    for (const [key, what] of LAG_SIDES) {
      const x = extras.lag?.[key];
      if (x === undefined) continue;
      L.push(
        `| replication lag, ${what} | ${x.stale} stale (${fx(x.stalePct, 1)} %, worst round ${fx(x.worstStalePct, 1)} %), read-after-write p50 ${x.p50} ms, p99 ${x.p99} ms, ${x.errors} errors${x.rounds.length > 1 ? `; rounds p50/p99 ${x.rounds.join(', ')}` : ''}${visibleText(x.visible, x.visibleCold)} |`,
      );
    }
    if (extras.failover)
      L.push(
        `| failure detection: SIGKILL of ${extras.failover.killed}, until /_clowder/stats shows one member less (polled every 5 ms) | ${extras.failover.detect.map((s) => `${s.node} ${fx(s.ms, 1)} ms`).join(', ')} |`,
      );
    if (extras.transfer)
      L.push(
        `| state transfer: ${fmt(extras.transfer.sessions)} sessions of 1 KiB to a joining node | stateTransfer.durationMs ${fmt(extras.transfer.transferMs)} (${extras.transfer.state}, ${fmt(extras.transfer.received)} sessions, ${fmt(extras.transfer.bytes / 1048576, 1)} MiB, ${extras.transfer.chunks} chunks); B start() -> ready ${fmt(extras.transfer.startMs)} ms${extras.transfer.rounds?.length > 1 ? `; rounds ${extras.transfer.rounds.map((x) => fmt(x)).join(' / ')} ms` : ''} |`,
      );
  }
  if (tgs.length > 0) {
    L.push('', '### Targets', '');
    for (const t of tgs) L.push(`- **${t.pass === null ? 'info' : t.pass ? 'PASS' : 'MISS'}** ${t.name}: ${t.detail}`);
  }
  const profiled = results.filter((r) => r.profile);
  if (extras.transfer?.profile)
    for (const [who, p] of Object.entries(extras.transfer.profile))
      profiled.push({ row: `transfer ${who}`, profile: { files: 1, ...p } });
  if (profiled.length > 0) {
    L.push('', '### CPU profiles (top self time, all nodes of the row together)', '');
    for (const r of profiled) {
      L.push(
        `${r.row}: ${r.profile.files} profiles, ${r.profile.sampledS} s sampled (idle and (program) left out)`,
        '',
      );
      printProfile(r.profile, (line) => L.push(line));
      L.push('');
    }
  }
  return `${L.join('\n')}\n`;
}

// ---- main ---------------------------------------------------------------------------------------

const startedAt = new Date().toISOString();
const info = machine();
log(
  `clowder comparison: ${info.cpuModel} x${info.cores}, node ${info.node}, ${info.wrk || 'no wrk'}, load ${info.loadavgAtStart.join(' ')}; ` +
    `rows ${RUN_ROWS.map((r) => r.id).join(' ') || '-'}; ${RUN_EXTRAS.join(' ') || ''}; wrk ${DURATION_S} s (+${WARMUP_S} s warm-up)${PROFILE ? '; profiling the clowder rows and map' : ''}`,
);
const tmp = tempDir('clowder-bench-compare-');
/** rounds[k]: every row's result in round k. */
const rounds = [];
const extraRounds = { lag: [], failover: [], transfer: [] };
const failures = [];
try {
  for (let round = 1; round <= REPS; round++) {
    if (REPS > 1) log(`round ${round} of ${REPS}`);
    const results = [];
    rounds.push(results);
    for (const row of RUN_SEQUENCE) {
      if (row.na) {
        results.push({ row: row.id, label: row.label, na: row.na });
        if (round === 1) log(`${row.id.padEnd(15)} ${row.na}`);
        continue;
      }
      try {
        // Profiles (--profile) come from the first round only.
        const r = await measureRow(row, tmp, PROFILE && round === 1);
        results.push(r);
        log(
          `${row.id.padEnd(15)} ${fmt(r.rps).padStart(7)} req/s  p50 ${fx(r.p50)} p99 ${fx(r.p99)} ms  errors ${r.errors}  ` +
            `lost ${r.lost ?? 'n/a'}${r.rawDiff !== undefined ? ` (raw ${r.rawDiff}${r.lostExact !== undefined ? `, ran-counted ${r.lostExact} of ${r.served} run` : ''})` : ''}  cpu ${fx(r.cpuUsPerReq, 1)} µs/req  ` +
            `rss ${fx(r.rssBytes / 1048576, 0)} MiB  machine ${fx(100 * r.machineBusy, 0)} %` +
            (r.replicaSums ? `  replicas ${r.replicasAgree ? 'agree' : `DIFFER ${r.replicaSums.join('/')}`}` : '') +
            (r.clowder
              ? `  conflicts ${r.clowder.map((n) => n.conflicts).join('/')}  ownership taken without a grant (timeouts+forced) ${r.clowder.map((n) => n.ownershipTimeouts + n.ownershipForced).join('/')}`
              : ''),
        );
        if (r.profile) {
          console.log(`  top self time, ${r.row} (${r.profile.files} profiles, ${r.profile.sampledS} s sampled):`);
          printProfile(r.profile, console.log);
        }
      } catch (err) {
        failures.push({ row: row.id, round, error: err?.stack ?? String(err) });
        results.push({
          row: row.id,
          label: row.label,
          na: `FAILED: ${String(err?.message ?? err)
            .split('\n')[0]
            .slice(0, 200)}`,
        });
        log(`${row.id}: FAILED: ${err?.stack ?? err}`);
      }
    }
    if (RUN_EXTRAS.includes('lag') || RUN_EXTRAS.includes('failover')) {
      try {
        const lf = await runLagFailover(tmp);
        if (lf.lag) extraRounds.lag.push(lf.lag);
        if (lf.failover) extraRounds.failover.push(lf.failover);
      } catch (err) {
        failures.push({ row: 'lag/failover', round, error: err?.stack ?? String(err) });
        log(`lag/failover: FAILED: ${err?.stack ?? err}`);
      }
    }
    if (RUN_EXTRAS.includes('transfer')) {
      try {
        extraRounds.transfer.push(await runTransfer(PROFILE && round === 1));
      } catch (err) {
        failures.push({ row: 'transfer', round, error: err?.stack ?? String(err) });
        log(`transfer: FAILED: ${err?.stack ?? err}`);
      }
    }
  }
} finally {
  removeTemp(tmp);
  agent.destroy();
}

// Ratios within each round, then one result per row (medians; worst round for losses).
for (const rs of rounds) addRatios(rs.filter((r) => !r.na));
const results = RUN_ROWS.map((row) => aggregate(rounds.map((rs) => rs.find((r) => r.row === row.id))));
const refs = fastestRefs(results.filter((r) => !r.na));
const pickMedian = (list, key) =>
  list.length === 0 ? undefined : [...list].sort((a, b) => key(a) - key(b))[(list.length - 1) >> 1];
const extras = {};
if (extraRounds.lag.length) {
  extras.lag = { ...pickMedian(extraRounds.lag, (l) => l.p99), rounds: extraRounds.lag.map((l) => [l.p50, l.p99]) };
  // Staleness and errors: the worst round.
  const stalest = [...extraRounds.lag].sort((a, b) => b.stalePct - a.stalePct)[0];
  extras.lag.stale = stalest.stale;
  extras.lag.stalePct = stalest.stalePct;
  extras.lag.errors = Math.max(...extraRounds.lag.map((l) => l.errors));
  extras.lag.visible = visibleOf(extraRounds.lag);
  extras.lag.visibleCold = visibleOf(extraRounds.lag, 'visibleCold');
  const wakes = extraRounds.lag.map((l) => l.wake).filter(Boolean);
  if (wakes.length)
    extras.lag.wake = { p50: median(wakes.map((w) => w.p50_ms)), p99: median(wakes.map((w) => w.p99_ms)) };
  // The side clusters: each its own median round (by p99), its rounds and its worst staleness.
  for (const [key] of LAG_SIDES) {
    const list = extraRounds.lag.map((l) => l[key]).filter(Boolean);
    if (list.length === 0) continue;
    extras.lag[key] = {
      ...pickMedian(list, (l) => l.p99),
      rounds: list.map((l) => `${l.p50}/${l.p99}`),
      worstStalePct: Math.max(...list.map((l) => l.stalePct)),
      visible: visibleOf(list),
      visibleCold: visibleOf(list, 'visibleCold'),
    };
  }
}
if (extraRounds.failover.length) extras.failover = [...extraRounds.failover].sort((a, b) => b.maxMs - a.maxMs)[0]; // the slowest detection
if (extraRounds.transfer.length)
  extras.transfer = {
    ...pickMedian(extraRounds.transfer, (t) => t.transferMs),
    rounds: extraRounds.transfer.map((t) => t.transferMs),
    complete: extraRounds.transfer.every((t) => t.complete),
  };
const tgs = targets(
  results.filter((r) => !r.na),
  extras,
  refs,
);
const md = markdown(info, startedAt, results, extras, tgs, refs);
console.log(`\n${md}`);
if (!args['no-save']) {
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `compare-${startedAt.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-')}`);
  const json = {
    benchmark: 'compare',
    startedAt,
    elapsedS: +((performance.now() - T0) / 1000).toFixed(1),
    machine: info,
    settings: {
      quick,
      reps: REPS,
      durationS: DURATION_S,
      warmupS: WARMUP_S,
      sessions: SESSIONS,
      connections: CONNECTIONS,
      payload: PAYLOAD,
      transferSessions: TRANSFER_SESSIONS,
      rows: RUN_ROWS.map((r) => r.id),
      extras: RUN_EXTRAS,
      profile: PROFILE,
      packages: JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).dependencies,
    },
    rows: results,
    rounds,
    ...extras,
    targets: tgs,
    failures,
  };
  writeFileSync(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(`${base}.md`, md);
  console.log(`results: ${relative(process.cwd(), base)}.json, .md`);
}
log('done');
if (failures.length > 0) {
  console.error(`bench/compare: ${failures.length} part(s) failed: ${failures.map((f) => f.row).join(', ')}`);
  process.exitCode = 1;
}
