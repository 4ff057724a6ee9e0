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
// Replicating rows wait, after the warm-up and after the measured run, until every server applied
// every change the others sent (their stats), instead of sleeping.
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
import { cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseOptions } from '../lib/args.mjs';
import { machine, toolVersion } from '../lib/machine.mjs';
import {
  cpuSeconds,
  freePorts,
  installReaper,
  machineTicks,
  removeTemp,
  rssBytes,
  tempDir,
  workloadClient,
} from '../lib/proc.mjs';
import { printProfile, summarizeProfiles } from '../lib/profile.mjs';
import { createLog, fmt, fx, resultsJson, saveResults } from '../lib/report.mjs';
import { waitUntilOrNot } from '../lib/wait.mjs';
import { workloadDir } from '../lib/workload.mjs';
import { runWrk, WRK_MISSING, wrkResult, wrkVersion } from '../lib/wrk.mjs';
import {
  APP,
  agent,
  clowderStats,
  NAMES,
  profArgv,
  settle,
  startClowder,
  startMapReplicated,
  startServer,
  stopAll,
} from './cluster.mjs';
import { aggregateLag, pickMedian, READ_ONLY } from './lag.mjs';
import { measurements } from './measurements.mjs';
import { RedisProc } from './redis.mjs';
import { addRatios, aggregate, fastestRefs, markdown, targets } from './report.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const T0 = performance.now();
const log = createLog(T0);

// ---- options ------------------------------------------------------------------------------------

const { args, num } = parseOptions(
  [
    ...['quick', 'rows', 'duration', 'warmup', 'sessions', 'connections', 'transfer-sessions', 'workload'],
    ...['no-save', 'profile', 'reps', 'read-pct', 'help'],
  ],
  'usage: node bench/compare/run.mjs [--quick] [--rows=id,prefix,...] [--duration=S] [--warmup=S] [--sessions=N]\n' +
    '         [--connections=N] [--transfer-sessions=N] [--reps=N] [--read-pct=N] [--workload=DIR] [--no-save] [--profile]\n' +
    'rows: bare map map-batched express-mem express-redis express-redis2 fastify-mem fastify-redis clowder-off clowder-async\n' +
    '      clowder-sync clowder-express lag failover transfer',
);
const quick = args.quick === true;
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
const PROFILE = args.profile === true;

/**
 * The rows, in table order. script: the server (servers/); nodes: how many (wrk spreads over
 * all); clowder: a clowder cluster (send: sendOptions); store: memory or redis (a redis-server of
 * the row's own); batch: map ends responses at the end of the turn; replicated: map servers
 * pushing changes to each other; counts false: no sessions to count; na: not measured (why).
 */
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
  ...['bare', 'map', 'map-batched', 'map-replicated', 'clowder-off', 'clowder-async', 'fastify-redis'],
  ...['clowder-sync', 'express-redis2', 'clowder-express', 'express-redis', 'fastify-mem', 'express-mem'],
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

// ---- preconditions: never install anything, say what is missing -----------------------------------

const WRK = wrkVersion();
const REDIS = toolVersion('redis-server', ['--version'])?.trim();
{
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
  if (measured.length > 0 && WRK === undefined) problems.push(WRK_MISSING);
  if (needsRedis && REDIS === undefined)
    problems.push(
      'redis-server is not installed (the Redis rows start their own, on a free loopback port). Install it, e.g.:\n' +
        '    sudo apt-get update && sudo apt-get install -y redis-server   (Debian/Ubuntu; a system service it may start is not used)\n' +
        '    brew install redis                                            (macOS)\n' +
        '  or leave the Redis rows out: --rows=bare,map,express-mem,fastify-mem,clowder',
    );
  if (!existsSync('/proc/self/stat')) problems.push('/proc is needed for CPU time and RSS per process (Linux only)');
  if (problems.length > 0) {
    for (const p of problems) console.error(`bench/compare: ${p}`);
    process.exit(2);
  }
}
installReaper('bench/compare');

// ---- rows -----------------------------------------------------------------------------------------

const wrk = (ports, cookies, seconds) =>
  runWrk({
    ports,
    threads: Math.max(ports.length, 2),
    connections: CONNECTIONS,
    seconds,
    script: LUA,
    scriptArgs: [cookies, PAYLOAD, READ_PCT],
  });

/** Starts the processes of a row; returns { servers, redis }. */
async function startRow(row, tmp, profDir) {
  if (row.clowder) {
    // /app/read declared read-only, as an application configures its read endpoints (only the
    // read-mostly mix and the count check send it).
    const options = { execArgv: profArgv(profDir), tag: row.id, script: row.script, readOnlyFilter: READ_ONLY };
    return { servers: await startClowder(row.nodes, row.send, options), redis: undefined };
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
      servers.push(startServer(row.script, spec, { tag: row.id, execArgv: profArgv(profDir) }));
    }
    await Promise.all(servers.map((s) => s.ready));
  } catch (err) {
    await stopAll(servers);
    await redis?.stop();
    throw err;
  }
  return { servers, redis };
}

/** Sum of counts read through every server, until all agree (false after 3 s). */
async function replicaSums(servers, cookies) {
  let sums = [];
  const agree = await waitUntilOrNot(
    async () => {
      sums = [];
      for (const s of servers) sums.push((await client('sumcounts', { port: s.port, cookies })).sum);
      return sums.every((x) => x === sums[0]);
    },
    { timeoutMs: 3000, intervalMs: 200 },
  );
  return { sums, agree };
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
    await settle(servers, row); // the warm-up's changes applied everywhere
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
    const r = wrkResult(w);
    const { non2xx, line: resultLine } = r;
    const settled = await settle(servers, row); // async replication: the last deltas arrived
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
      ...(servers.length > 1 ? { settled } : {}),
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
        const rep = await replicaSums(servers, cookies);
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

const { runLagFailover, runTransfer } = measurements({
  client,
  sessions: SESSIONS,
  warmupS: WARMUP_S,
  transferSessions: TRANSFER_SESSIONS,
  payload: PAYLOAD,
  extras: RUN_EXTRAS,
  log,
});

// ---- main ---------------------------------------------------------------------------------------

/**
 * The measurements beside the rows, run once per round after them: `ids` select them (--rows),
 * `run(tmp, round)` returns { lag?, failover?, transfer? }, `aggregate` makes one result of a
 * measurement's rounds.
 */
const MEASUREMENTS = [
  { ids: ['lag', 'failover'], run: (tmp) => runLagFailover(tmp) },
  { ids: ['transfer'], run: async (_tmp, round) => ({ transfer: await runTransfer(PROFILE && round === 1) }) },
];
const AGGREGATE = {
  lag: aggregateLag,
  failover: (list) => [...list].sort((a, b) => b.maxMs - a.maxMs)[0], // the slowest detection
  transfer: (list) => ({
    ...pickMedian(list, (t) => t.transferMs),
    rounds: list.map((t) => t.transferMs),
    complete: list.every((t) => t.complete),
  }),
};

const logRow = (r) =>
  log(
    `${r.row.padEnd(15)} ${fmt(r.rps).padStart(7)} req/s  p50 ${fx(r.p50)} p99 ${fx(r.p99)} ms  errors ${r.errors}  ` +
      `lost ${r.lost ?? 'n/a'}${r.rawDiff !== undefined ? ` (raw ${r.rawDiff}${r.lostExact !== undefined ? `, ran-counted ${r.lostExact} of ${r.served} run` : ''})` : ''}  cpu ${fx(r.cpuUsPerReq, 1)} µs/req  ` +
      `rss ${fx(r.rssBytes / 1048576, 0)} MiB  machine ${fx(100 * r.machineBusy, 0)} %` +
      (r.replicaSums ? `  replicas ${r.replicasAgree ? 'agree' : `DIFFER ${r.replicaSums.join('/')}`}` : '') +
      (r.clowder
        ? `  conflicts ${r.clowder.map((n) => n.conflicts).join('/')}  ownership taken without a grant (timeouts+forced) ${r.clowder.map((n) => n.ownershipTimeouts + n.ownershipForced).join('/')}`
        : ''),
  );

const startedAt = new Date().toISOString();
const info = machine({ wrk: WRK || '', redis: REDIS || '' });
log(
  `clowder comparison: ${info.cpuModel} x${info.cores}, node ${info.node}, ${info.wrk || 'no wrk'}, load ${info.loadavgAtStart.join(' ')}; ` +
    `rows ${RUN_ROWS.map((r) => r.id).join(' ') || '-'}; ${RUN_EXTRAS.join(' ') || ''}; wrk ${DURATION_S} s (+${WARMUP_S} s warm-up)${PROFILE ? '; profiling the clowder rows and map' : ''}`,
);
const tmp = tempDir('clowder-bench-compare-');
/** rounds[k]: every row's result in round k. */
const rounds = [];
const extraRounds = { lag: [], failover: [], transfer: [] };
const failures = [];
const failed = (row, round, err) => {
  failures.push({ row, round, error: err?.stack ?? String(err) });
  log(`${row}: FAILED: ${err?.stack ?? err}`);
};
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
        logRow(r);
        if (r.profile) {
          console.log(`  top self time, ${r.row} (${r.profile.files} profiles, ${r.profile.sampledS} s sampled):`);
          printProfile(r.profile, console.log);
        }
      } catch (err) {
        const why = String(err?.message ?? err)
          .split('\n')[0]
          .slice(0, 200);
        results.push({ row: row.id, label: row.label, na: `FAILED: ${why}` });
        failed(row.id, round, err);
      }
    }
    for (const m of MEASUREMENTS) {
      if (!m.ids.some((id) => RUN_EXTRAS.includes(id))) continue;
      try {
        const out = await m.run(tmp, round);
        for (const [k, v] of Object.entries(out)) if (v) extraRounds[k].push(v);
      } catch (err) {
        failed(m.ids.join('/'), round, err);
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
if (refs.map) info.mapRps = refs.map.rps;
const extras = {};
for (const [k, list] of Object.entries(extraRounds)) if (list.length) extras[k] = AGGREGATE[k](list);
const tgs = targets(
  results.filter((r) => !r.na),
  extras,
  refs,
);
const settings = {
  ...{ quick, reps: REPS, durationS: DURATION_S, warmupS: WARMUP_S, sessions: SESSIONS, connections: CONNECTIONS },
  ...{ payload: PAYLOAD, readPct: READ_PCT, transferSessions: TRANSFER_SESSIONS },
  ...{ rows: RUN_ROWS.map((r) => r.id), extras: RUN_EXTRAS, profile: PROFILE },
  packages: JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).dependencies,
};
const md = markdown(info, startedAt, results, extras, tgs, refs, settings);
console.log(`\n${md}`);
if (!args['no-save'])
  saveResults(
    resultsJson({
      benchmark: 'compare',
      startedAt,
      t0: T0,
      machine: info,
      settings,
      rows: results,
      targets: tgs,
      ...extras,
      failures,
    }),
    md,
  );
log('done');
if (failures.length > 0) {
  console.error(`bench/compare: ${failures.length} part(s) failed: ${failures.map((f) => f.row).join(', ')}`);
  process.exitCode = 1;
}
