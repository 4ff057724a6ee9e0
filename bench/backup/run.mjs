// BackupManager against DeltaManager: the shared counter workload (../shared/workload) on clowder
// nodes with `sessions.manager` "delta" (every node holds every session) or "backup" (each session
// on its primary and --backups others), side by side in one run.
//
//   npm run build && node bench/backup/run.mjs                 (every part, 3 repetitions)
//   node bench/backup/run.mjs --quick                          (1 repetition, 5 s wrk runs, 8,000 sessions)
//   node bench/backup/run.mjs --only=scale --sizes=2,4,6 --managers=delta,backup
//
// Parts (--only, in this order):
//   big      4 nodes, --sessions-held (40,000) sessions of 1 KiB created spread over the nodes, then
//            the counter workload with load spread over all 4 (wrk's threads over the nodes, no
//            stickiness): memory per node (RSS and heap after GC, once every node holds what it
//            should), req/s, cluster CPU per request (utime+stime of every node / requests),
//            frames and bytes the channel carried per request. Targets for backup (k = 1) against
//            delta in the same repetition: memory <= 0.55x, CPU per request <= 0.7x, req/s >= 1.3x.
//            Then, on the same nodes, the load spread as a sticky balancer spreads it: one wrk per
//            node with the sessions made there (each session's requests at its home node), the
//            same ratios beside them.
//   scale    messages and bytes per request as the cluster grows (--sizes, default 2,4,6 nodes),
//            load spread: replication messages (created + delta) each node's manager sent, times
//            the members each went to, per request; the channel's frames and bytes received by
//            all nodes per request. Constant for backup (k per change), growing for delta. Then
//            the same nodes under sticky spread (as in big): only changes travel, so the bytes per
//            request are constant for backup too.
//   restore  backup only: 4 nodes holding --sessions-held sessions; SIGKILL one: the time until no
//            survivor reports an under-replicated session (stats underReplicated = 0). Target <= 2 s.
//   sticky   3 nodes, wrk on node A only (its sessions stay there), backup vs replication off
//            (A alone) in the same repetition. Target: backup >= 0.8x off (Tomcat's BackupManager,
//            measured the same way: 0.29x). Beside them the machine's reference row "map": the same
//            app behind a hand-written Map session (bench/http/map-node.mjs), so ratios can be read
//            across machines.
//
// Options: --quick --reps=N --duration=S --warmup=S --sessions=N (workload sessions, 1000)
//          --sessions-held=N --backups=K (1) --managers=delta,backup --sizes=2,4,6 --only=a,b
//          --connections=N (64) --threads=N (2) --workload=DIR --no-save
// Results: bench/results/backup-<ISO date>.json and .md. Every node is a child process
// (bench/http/node.mjs); all traffic stays on 127.0.0.1.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseOptions } from '../lib/args.mjs';
import { machine } from '../lib/machine.mjs';
import { cpuSeconds, freePorts, installReaper, removeTemp, tempDir, workloadClient } from '../lib/proc.mjs';
import { createLog, fmt, fx, mdTable, reportHead, resultsJson, saveResults, targetList } from '../lib/report.mjs';
import { median } from '../lib/stats.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { forkWorker, stopAll } from '../lib/worker.mjs';
import { workloadDir } from '../lib/workload.mjs';
import { runWrk, WRK_MISSING, wrkResult, wrkVersion } from '../lib/wrk.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const T0 = performance.now();
const log = createLog(T0);

const { args, num: option } = parseOptions(
  [
    ...['quick', 'reps', 'duration', 'warmup', 'sessions', 'sessions-held', 'backups', 'managers', 'sizes'],
    ...['only', 'connections', 'threads', 'workload', 'no-save', 'profile', 'forward', 'local-socket', 'help'],
  ],
  'usage: node bench/backup/run.mjs [--quick] [--only=big,scale,restore,sticky] [--managers=delta,backup]\n' +
    '         [--sizes=2,4,6] [--reps=N] [--duration=S] [--warmup=S] [--sessions=N] [--sessions-held=N]\n' +
    '         [--backups=K] [--connections=N] [--threads=N] [--workload=DIR] [--forward=auto|always|off]\n' +
    '         [--local-socket=on|off] [--no-save]',
);
const quick = args.quick === true;
const num = (k, d) => option(k, d, { positive: true });
const REPS = num('reps', quick ? 1 : 3);
const DURATION_S = num('duration', quick ? 5 : 10);
const WARMUP_S = num('warmup', quick ? 1 : 2);
const SESSIONS = num('sessions', 1000);
const HELD = num('sessions-held', quick ? 8000 : 40_000);
const BACKUPS = option('backups', 1);
const CONNECTIONS = num('connections', 64);
const THREADS = num('threads', 2);
const PAYLOAD = 1024;
const list = (k, d) =>
  String(args[k] ?? d)
    .split(',')
    .filter(Boolean);
const MANAGERS = list('managers', 'delta,backup');
/** http.forward of every node (owner forwarding); the node's default ("off") unless given. */
const FORWARD = args.forward === undefined ? undefined : String(args.forward);
/** receiver.localSocket of every node (peers on this host over a Unix socket); the node's default (on) unless given. */
const LOCAL_SOCKET = args['local-socket'] === undefined ? undefined : String(args['local-socket']);
const SIZES = list('sizes', '2,4,6').map(Number);
const PARTS = ['big', 'scale', 'restore', 'sticky'];
const ONLY = list('only', PARTS.join(','));
{
  const problems = [];
  for (const m of MANAGERS) if (m !== 'delta' && m !== 'backup') problems.push(`--managers: delta or backup, not ${m}`);
  if (FORWARD !== undefined && !['auto', 'always', 'off'].includes(FORWARD))
    problems.push(`--forward: auto, always or off, not ${FORWARD}`);
  if (LOCAL_SOCKET !== undefined && !['on', 'off'].includes(LOCAL_SOCKET))
    problems.push(`--local-socket: on or off, not ${LOCAL_SOCKET}`);
  for (const n of SIZES) if (!Number.isInteger(n) || n < 2) problems.push(`--sizes: integers >= 2, not ${n}`);
  for (const p of ONLY) if (!PARTS.includes(p)) problems.push(`--only: ${PARTS.join(', ')}, not ${p}`);
  if (!existsSync(join(root, 'dist', 'index.js'))) problems.push('dist/index.js is missing: run `npm run build`');
  if (wrkVersion() === undefined && ONLY.some((p) => p !== 'restore')) problems.push(WRK_MISSING);
  if (problems.length > 0) {
    for (const p of problems) console.error(`bench/backup: ${p}`);
    process.exit(2);
  }
}
const WORKLOAD = workloadDir(args.workload);
const LUA = join(WORKLOAD, 'session.lua');
const client = workloadClient(join(WORKLOAD, 'client.mjs'));
const APP = join(root, 'examples', 'counter', 'app.mjs');
installReaper('bench:backup');
/** The machine, read before anything runs (its load average is the one at the start). */
const info = machine({ wrk: wrkVersion() });

// ---- nodes ----------------------------------------------------------------------------------------

let domainSeq = 0;
const PROF_DIR = join(here, '.prof');
/** --profile: the node runs with --cpu-prof into bench/backup/.prof/<tag>/. */
function profileArgs(tag) {
  if (!args.profile) return [];
  const dir = join(PROF_DIR, tag);
  mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

/** Starts n nodes with `manager` (undefined: the library's default) at once; resolves when each sees every other. */
async function startCluster(n, manager, script = 'node.mjs') {
  const ports = await freePorts(2 * n);
  const domain = `bench-backup-${process.pid}-${domainSeq++}`;
  const members = Array.from({ length: n }, (_, i) => `127.0.0.1:${ports[2 * i + 1]}`);
  const nodes = Array.from({ length: n }, (_, i) => {
    const spec = {
      ...{ name: `N${i + 1}`, httpPort: ports[2 * i], clusterPort: ports[2 * i + 1], members, domain },
      ...{ send: 'async', expect: n - 1, app: APP, forward: FORWARD },
      ...(LOCAL_SOCKET !== undefined ? { localSocket: LOCAL_SOCKET === 'on' } : {}),
      ...(manager === 'backup' ? { manager, backups: BACKUPS } : {}),
    };
    const w = forkWorker(join(root, 'bench', 'http', script), {
      name: `node ${spec.name}`,
      execArgv: ['--expose-gc', ...profileArgs(`${manager ?? 'off'}-${n}-${domainSeq}-${spec.name}`)],
      env: { ...process.env, BENCH_NODE: JSON.stringify(spec) },
    });
    return Object.assign(w, { httpPort: spec.httpPort });
  });
  try {
    await Promise.all(nodes.map((p) => p.ready));
  } catch (err) {
    await stopNodes(nodes);
    throw err;
  }
  return nodes;
}

const stopNodes = (nodes) => stopAll(nodes, { command: 'stop', graceMs: 10_000 });
const statsOf = (nodes) => Promise.all(nodes.map((p) => p.call('stats')));

/**
 * Until the cluster is quiet: two polls 300 ms apart see the same replication counters on every
 * node (and, for backup, no under-replicated session). Works for both managers: a delta change goes
 * to every member, a backup change to k of them, so "received = sent by the others" does not hold.
 */
async function quiet(nodes, what) {
  let last = '';
  await waitUntil(
    async () => {
      const st = await statsOf(nodes);
      const now = JSON.stringify(st.map((s) => [s.changes, s.sessions, s.manager?.underReplicated ?? 0]));
      const ok = now === last && st.every((s) => (s.manager?.underReplicated ?? 0) === 0);
      last = now;
      return ok;
    },
    { timeoutMs: 120_000, intervalMs: 300, what: `${what}: replication quiet` },
  );
}

/**
 * Replication messages sent (created + delta, manager stats), counted once per member they went
 * to: a delta change goes to every peer, a backup change to its k backups (fewer when fewer peers
 * serve the context). The channel's frames and bytes are the measured check on this count.
 */
function changeSends(s) {
  if (s.manager === undefined) return 0; // the Map row: no clowder
  const to = s.manager.manager === 'backup' ? Math.min(BACKUPS, s.peers) : s.peers;
  return s.changes.sent * to;
}

const sum = (xs) => xs.reduce((a, b) => a + b, 0);
/** Messages per request by type, for the log: "delta 0.99, fetch 0.75, …". */
const msgsText = (m) =>
  Object.entries(m)
    .map(([k, v]) => `${k} ${fx(v)}`)
    .join(', ');

/** One load run's log text: rate, CPU, traffic, losses, the session counters, messages by type. */
const loadText = (r) =>
  `${fmt(r.rps)} req/s  cpu ${fx(r.cpuUsPerReq, 1)} us/req  changes/req ${fx(r.changesPerReq)}  frames/req ${fx(r.framesPerReq)}  ` +
  `bytes/req ${fmt(r.bytesPerReq)}  lost ${r.lost} non-2xx ${r.non2xx}  ${JSON.stringify(r.counters)}\n    msgs/req ${msgsText(r.msgsPerReq)}`;

/**
 * Workload cookies spread over the nodes (SESSIONS in all), made through HTTP like a client's: `all`
 * in one file, and `files[i]` the ones made at node i (their home when a balancer sticks).
 */
async function cookiesFor(nodes, tmp, tag) {
  const files = [];
  const per = Math.ceil(SESSIONS / nodes.length);
  for (const [i, p] of nodes.entries()) {
    const out = join(tmp, `cookies-${tag}-${i}.txt`);
    const mk = await client('mksessions', { port: p.httpPort, n: per, out });
    if (mk.sessions !== per) throw new Error(`mksessions made ${mk.sessions} of ${per} sessions on ${p.name}`);
    files.push(out);
  }
  const all = join(tmp, `cookies-${tag}.txt`);
  writeFileSync(all, `${files.map((f) => readFileSync(f, 'utf8').trim()).join('\n')}\n`);
  return { all, files };
}

/**
 * The counter sums of the sessions in `cookies`, read at `ports[0]`; with one cookie file per port
 * (sticky spread), each file read at its own node (reading a session elsewhere would move it).
 */
async function sumCounts(ports, cookies) {
  const files = Array.isArray(cookies) ? cookies : [cookies];
  const parts = await Promise.all(files.map((f, i) => client('sumcounts', { port: ports[i], cookies: f })));
  return {
    sum: sum(parts.map((x) => x.sum)),
    errors: sum(parts.map((x) => x.errors)),
    lost_sessions: sum(parts.map((x) => x.lost_sessions)),
  };
}

/**
 * The measured wrk run over `ports` (one port: sticky to that node; several: wrk's threads spread
 * over them): req/s, latency, lost increments, CPU and channel traffic per request. With one cookie
 * file per port (sticky spread), one wrk per node, each with that node's sessions, its share of the
 * connections and threads, all at once.
 */
async function loadRun(nodes, ports, cookies) {
  const perNode = Array.isArray(cookies);
  const wrkOne = (seconds, p, c, threads, connections) =>
    runWrk({ ports: p, threads, connections, seconds, script: LUA, scriptArgs: [c, PAYLOAD, 0] });
  const wrk = async (seconds) => {
    if (!perNode)
      return [wrkResult(await wrkOne(seconds, ports, cookies, Math.max(THREADS, ports.length), CONNECTIONS))];
    const each = Math.max(1, Math.floor(CONNECTIONS / ports.length));
    const runs = await Promise.all(ports.map((p, i) => wrkOne(seconds, [p], cookies[i], 1, each)));
    return runs.map(wrkResult);
  };
  if (WARMUP_S > 0) await wrk(WARMUP_S);
  const before = await sumCounts(ports, cookies);
  const st0 = await statsOf(nodes);
  const cpu0 = nodes.map((p) => cpuSeconds(p.pid));
  const rs = await wrk(DURATION_S);
  const cpu1 = nodes.map((p) => cpuSeconds(p.pid));
  // Several wrks (sticky spread): requests and rates add up; latencies are the slowest node's.
  const r = {
    requests: sum(rs.map((x) => Number(x.requests))),
    rps: sum(rs.map((x) => Number(x.rps))),
    p50_ms: Math.max(...rs.map((x) => Number(x.p50_ms))),
    p99_ms: Math.max(...rs.map((x) => Number(x.p99_ms))),
    non2xx: sum(rs.map((x) => x.non2xx)),
  };
  await quiet(nodes, 'after the load');
  const st1 = await statsOf(nodes);
  const after = await sumCounts(ports, cookies);
  const d = (f) => sum(st1.map(f)) - sum(st0.map(f));
  return {
    requests: r.requests,
    rps: r.rps,
    p50: r.p50_ms,
    p99: r.p99_ms,
    lost: Math.max(0, r.requests - (after.sum - before.sum)),
    cpuUsPerReq: ((sum(cpu1) - sum(cpu0)) / r.requests) * 1e6,
    cpuUsPerReqByNode: cpu1.map((c, i) => ((c - cpu0[i]) / r.requests) * 1e6),
    changesPerReq: d(changeSends) / r.requests,
    framesPerReq: d((s) => s.transport?.framesIn ?? 0) / r.requests,
    bytesPerReq: d((s) => s.transport?.bytesIn ?? 0) / r.requests,
    non2xx: r.non2xx,
    readErrors: before.errors + after.errors,
    lostSessions: after.lost_sessions,
    // Session messages received by all nodes per request, by type (batched ones counted one by one).
    msgsPerReq: Object.fromEntries(
      [...new Set(st1.flatMap((s) => Object.keys(s.manager?.received ?? {})))]
        .map((k) => [k, d((s) => s.manager?.received?.[k] ?? 0) / r.requests])
        .filter(([, v]) => v >= 0.005)
        .sort((a, b) => b[1] - a[1]),
    ),
    // The session counters that explain a loss or a cost (summed over the nodes, during the run).
    counters: Object.fromEntries(
      [
        'fetches',
        'fetchMisses',
        'fetchFallbacks',
        'fetchTimeouts',
        'refusedFetches',
        'ownershipMoves',
        'ownershipForced',
        'ownershipTimeouts',
        'fencedWrites',
        'conflicts',
        'staleDeltas',
      ].map((k) => [k, d((s) => s.manager?.[k] ?? 0)]),
    ),
  };
}

/** Memory of every node after GC: RSS and heap used. */
async function memory(nodes) {
  const m = await Promise.all(nodes.map((p) => p.call('mem', { gc: true })));
  return { rss: m.map((x) => x.mem.rss), heapUsed: m.map((x) => x.mem.heapUsed) };
}

/** HELD sessions of 1 KiB, a share made on each node (as requests: they replicate). */
async function fillSpread(nodes) {
  const per = Math.ceil(HELD / nodes.length);
  await Promise.all(nodes.map((p) => p.call('fill', { n: per, payload: PAYLOAD }, 300_000)));
}

// ---- parts ------------------------------------------------------------------------------------------

async function big(rep, tmp) {
  const out = [];
  for (const manager of MANAGERS) {
    const nodes = await startCluster(4, manager);
    try {
      await fillSpread(nodes);
      await quiet(nodes, `${manager}: ${HELD} sessions`);
      const held = (await statsOf(nodes)).map((s) => s.sessions);
      const mem = await memory(nodes);
      const cookies = await cookiesFor(nodes, tmp, `big-${manager}-${rep}`);
      const ports = nodes.map((p) => p.httpPort);
      const load = await loadRun(nodes, ports, cookies.all);
      out.push({ part: 'big', manager, rep, held, ...mem, ...load });
      log(
        `big rep ${rep} ${manager.padEnd(6)} held ${held.join('/')}  rss ${fmt(median(mem.rss) / 2 ** 20, 0)} MiB heap ${fmt(median(mem.heapUsed) / 2 ** 20, 0)} MiB  ` +
          loadText(load),
      );
      // The same nodes behind a sticky balancer: each session's requests at the node it was made on.
      const st = await loadRun(nodes, ports, cookies.files);
      out.push({ part: 'bigSticky', manager, rep, held, ...mem, ...st });
      log(`big rep ${rep} ${manager.padEnd(6)} sticky spread  ${loadText(st)}`);
    } finally {
      await stopNodes(nodes);
    }
  }
  return out;
}

async function scale(rep, tmp) {
  const out = [];
  for (const n of SIZES)
    for (const manager of MANAGERS) {
      const nodes = await startCluster(n, manager);
      try {
        const cookies = await cookiesFor(nodes, tmp, `scale-${manager}-${n}-${rep}`);
        await quiet(nodes, `${manager} ${n} nodes`);
        const ports = nodes.map((p) => p.httpPort);
        const load = await loadRun(nodes, ports, cookies.all);
        out.push({ part: 'scale', manager, nodes: n, rep, ...load });
        log(`scale rep ${rep} ${manager.padEnd(6)} ${n} nodes  ${loadText(load)}`);
        // The same nodes behind a sticky balancer: only the replication of changes travels.
        const st = await loadRun(nodes, ports, cookies.files);
        out.push({ part: 'scaleSticky', manager, nodes: n, rep, ...st });
        log(`scale rep ${rep} ${manager.padEnd(6)} ${n} nodes sticky spread  ${loadText(st)}`);
      } finally {
        await stopNodes(nodes);
      }
    }
  return out;
}

async function restore(rep) {
  if (!MANAGERS.includes('backup')) return [];
  const nodes = await startCluster(4, 'backup');
  try {
    await fillSpread(nodes);
    await quiet(nodes, `backup: ${HELD} sessions`);
    const [victim, ...survivors] = nodes;
    const killedAt = performance.now();
    victim.kill('SIGKILL');
    // Under-replicated sessions appear once the survivors see the member gone, then drain to 0.
    let seen = 0;
    await waitUntil(
      async () => {
        const st = await statsOf(survivors);
        const under = sum(st.map((s) => s.manager.underReplicated ?? 0));
        seen = Math.max(seen, under);
        return st.every((s) => s.peers === survivors.length - 1) && under === 0;
      },
      { timeoutMs: 60_000, intervalMs: 10, what: 'the replication factor restored' },
    );
    const ms = performance.now() - killedAt;
    const st = await statsOf(survivors);
    const r = { part: 'restore', manager: 'backup', rep, ms, underReplicatedSeen: seen };
    r.lastRestoredAt = st.map((s) => s.manager.lastRestoredAt ?? null);
    log(`restore rep ${rep}: factor restored ${fx(ms, 0)} ms after SIGKILL (${seen} under-replicated seen)`);
    return [r];
  } finally {
    await stopNodes(nodes);
  }
}

/** One single-entry row: `n` nodes (`manager`, or none; `script`), wrk on the first with its own sessions. */
async function entryRow(part, row, n, manager, script, rep, tmp) {
  const nodes = await startCluster(n, manager, script);
  try {
    const cookies = join(tmp, `cookies-${part}-${row}-${rep}.txt`);
    await client('mksessions', { port: nodes[0].httpPort, n: SESSIONS, out: cookies });
    const load = await loadRun(nodes, [nodes[0].httpPort], cookies);
    log(
      `${part} rep ${rep} ${row.padEnd(6)} ${fmt(load.rps)} req/s  cpu ${fx(load.cpuUsPerReq, 1)} us/req (by node ${load.cpuUsPerReqByNode.map((c) => fx(c, 1)).join(' / ')})  frames/req ${fx(load.framesPerReq)}  lost ${load.lost}`,
    );
    return { part, manager: row, nodes: n, rep, ...load };
  } finally {
    await stopNodes(nodes);
  }
}

/** The machine's reference row: the same app behind a hand-written Map session (no clowder). */
const mapRow = (part, rep, tmp) => entryRow(part, 'map', 1, undefined, 'map-node.mjs', rep, tmp);

async function sticky(rep, tmp) {
  const out = [await mapRow('sticky', rep, tmp)];
  out.push(await entryRow('sticky', 'off', 1, undefined, undefined, rep, tmp));
  if (MANAGERS.includes('backup')) out.push(await entryRow('sticky', 'backup', 3, 'backup', undefined, rep, tmp));
  return out;
}

// ---- run and report -------------------------------------------------------------------------------

const RUNNERS = { big, scale, restore, sticky };
const runs = [];
const tmp = tempDir('clowder-bench-backup-');
try {
  for (let rep = 1; rep <= REPS; rep++) {
    // Every load part's ratios are read beside the machine's Map row (the sticky part measures its own).
    if (!ONLY.includes('sticky') && ONLY.some((p) => p === 'big' || p === 'scale'))
      runs.push(await mapRow('map', rep, tmp));
    for (const p of PARTS) if (ONLY.includes(p)) runs.push(...(await RUNNERS[p](rep, tmp)));
  }
} finally {
  removeTemp(tmp);
}

const pick = (part, f) => runs.filter((r) => r.part === part && f(r));
/** Median over the repetitions of a per-repetition ratio of `key` (backup over `baseRow`). */
const pairedRatio = (part, key, baseRow, f = () => true) => pairedRatioOf(part, key, 'backup', baseRow, f);
/** Median over the repetitions of a per-repetition ratio of `key` (`row` over `baseRow`). */
function pairedRatioOf(part, key, row, baseRow, f = () => true) {
  const ratios = [];
  for (let rep = 1; rep <= REPS; rep++) {
    const b = pick(part, (r) => r.rep === rep && r.manager === row && f(r))[0];
    const base = pick(part, (r) => r.rep === rep && r.manager === baseRow && f(r))[0];
    if (b && base) ratios.push(key(b) / key(base));
  }
  return median(ratios);
}
const medianOf = (rs, key) => median(rs.map(key));
const rssMedian = (r) => median(r.rss);

const md = [];
const targets = [];
const startedAt = new Date(Date.now() - (performance.now() - T0)).toISOString();
md.push(reportHead('BackupManager against DeltaManager', startedAt, info));
md.push(
  `${REPS} repetition(s), wrk ${DURATION_S} s after ${WARMUP_S} s warm-up, ${CONNECTIONS} connections, ${SESSIONS} workload sessions, backups = ${BACKUPS}, http.forward = ${FORWARD ?? 'off (default)'}, receiver.localSocket = ${LOCAL_SOCKET ?? 'on (default)'}; medians over the repetitions.\n`,
);
const maps = runs.filter((r) => r.manager === 'map');
if (maps.length > 0)
  md.push(
    `Map row (the machine's reference: the same app behind a hand-written in-memory Map session, bench/http/map-node.mjs, no clowder), measured in this run: ${fmt(medianOf(maps, (r) => r.rps))} req/s (median; rounds ${maps.map((r) => fmt(r.rps)).join(' / ')}).\n`,
  );
if (ONLY.includes('big')) {
  md.push(`### 4 nodes, ${fmt(HELD)} sessions of 1 KiB, load spread\n`);
  md.push(
    'Rows "no stickiness": wrk\'s threads over the 4 nodes, each request for a session picked at random (3 in 4 land on a node that does not own it). Rows "sticky": the same nodes, one wrk per node with the sessions made there, as a sticky balancer spreads them.\n',
  );
  md.push(
    mdTable(
      [
        'manager',
        'load',
        'sessions held per node',
        'RSS per node MiB',
        'heap per node MiB',
        'req/s',
        'CPU µs/req',
        'changes sent/req',
        'frames/req',
        'bytes/req',
        'lost',
      ],
      ['big', 'bigSticky']
        .flatMap((part) => MANAGERS.map((m) => [m, part, pick(part, (r) => r.manager === m)]))
        .map(([m, part, rs]) => {
          return [
            m,
            part === 'big' ? 'no stickiness' : 'sticky',
            rs[0]?.held.join(' / ') ?? '-',
            fx(medianOf(rs, rssMedian) / 2 ** 20, 0),
            fx(medianOf(rs, (r) => median(r.heapUsed)) / 2 ** 20, 0),
            fmt(medianOf(rs, (r) => r.rps)),
            fx(
              medianOf(rs, (r) => r.cpuUsPerReq),
              1,
            ),
            fx(medianOf(rs, (r) => r.changesPerReq)),
            fx(medianOf(rs, (r) => r.framesPerReq)),
            fmt(medianOf(rs, (r) => r.bytesPerReq)),
            Math.max(...rs.map((r) => r.lost)),
          ];
        }),
      ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  md.push('');
  if (MANAGERS.includes('backup') && MANAGERS.includes('delta')) {
    const mem = pairedRatio('big', (r) => sum(r.heapUsed), 'delta');
    const rss = pairedRatio('big', (r) => sum(r.rss), 'delta');
    const cpu = pairedRatio('big', (r) => r.cpuUsPerReq, 'delta');
    const rps = pairedRatio('big', (r) => r.rps, 'delta');
    targets.push({
      name: 'memory per node, backup / delta <= 0.55 (heap after GC)',
      pass: mem <= 0.55,
      detail: `${fx(mem)}x (RSS ${fx(rss)}x)`,
    });
    targets.push({ name: 'cluster CPU per request, backup / delta <= 0.7', pass: cpu <= 0.7, detail: `${fx(cpu)}x` });
    targets.push({ name: 'req/s, backup / delta >= 1.3', pass: rps >= 1.3, detail: `${fx(rps)}x` });
    // The same two targets with the load spread by a sticky balancer (reported beside, not instead).
    const cpuS = pairedRatio('bigSticky', (r) => r.cpuUsPerReq, 'delta');
    const rpsS = pairedRatio('bigSticky', (r) => r.rps, 'delta');
    targets.push({
      name: 'sticky spread: cluster CPU per request, backup / delta <= 0.7',
      pass: cpuS <= 0.7,
      detail: `${fx(cpuS)}x`,
    });
    targets.push({ name: 'sticky spread: req/s, backup / delta >= 1.3', pass: rpsS >= 1.3, detail: `${fx(rpsS)}x` });
  }
}
if (ONLY.includes('scale')) {
  /** One table of the `part` rows ('scale': load spread; 'scaleSticky': sticky spread) by cluster size. */
  const scaleTable = (part) =>
    mdTable(
      ['nodes', ...MANAGERS.flatMap((m) => [`${m} req/s`, `${m} changes/req`, `${m} frames/req`, `${m} bytes/req`])],
      SIZES.map((n) => [
        n,
        ...MANAGERS.flatMap((m) => {
          const rs = pick(part, (r) => r.manager === m && r.nodes === n);
          return [
            fmt(medianOf(rs, (r) => r.rps)),
            fx(medianOf(rs, (r) => r.changesPerReq)),
            fx(medianOf(rs, (r) => r.framesPerReq)),
            fmt(medianOf(rs, (r) => r.bytesPerReq)),
          ];
        }),
      ]),
      ['r', ...MANAGERS.flatMap(() => ['r', 'r', 'r', 'r'])],
    );
  md.push('### Messages and bytes per request as the cluster grows\n');
  md.push(
    'Load spread (no stickiness): wrk over every node, each request for a session picked at random. ' +
      'Bytes are everything the channel carried (with the BackupManager also the fetches and take-overs ' +
      'of sessions requested where they are not held); changes are the replication messages.\n',
  );
  md.push(scaleTable('scale'));
  md.push('');
  md.push('Sticky spread: the same nodes, one wrk per node with the sessions made there (only the changes travel).\n');
  md.push(scaleTable('scaleSticky'));
  md.push('');
  if (MANAGERS.includes('backup') && SIZES.length > 1) {
    const perSize = (part, key) =>
      SIZES.map((n) =>
        medianOf(
          pick(part, (r) => r.manager === 'backup' && r.nodes === n),
          (r) => r[key],
        ),
      );
    const spreadOf = (xs) => Math.max(...xs) / Math.min(...xs);
    const changes = perSize('scale', 'changesPerReq');
    targets.push({
      name: `backup: changes sent per request constant over ${SIZES.join('/')} nodes (max/min <= 1.25)`,
      pass: spreadOf(changes) <= 1.25,
      detail: changes.map((x) => fx(x)).join(' / '),
    });
    const bytes = perSize('scaleSticky', 'bytesPerReq');
    targets.push({
      name: `backup, sticky spread: bytes per request constant over ${SIZES.join('/')} nodes (max/min <= 1.25)`,
      pass: spreadOf(bytes) <= 1.25,
      detail: bytes.map((x) => fmt(x)).join(' / '),
    });
    const spreadBytes = perSize('scale', 'bytesPerReq');
    md.push(
      `Backup bytes per request under load spread: ${spreadBytes.map((x) => fmt(x)).join(' / ')} ` +
        `(max/min ${fx(spreadOf(spreadBytes))}; not a target: fetches, not replication).\n`,
    );
  }
}
if (ONLY.includes('restore') && MANAGERS.includes('backup')) {
  const ms = medianOf(
    pick('restore', () => true),
    (r) => r.ms,
  );
  md.push(`### Restoring the factor after a SIGKILL (4 nodes, ${fmt(HELD)} sessions)\n`);
  md.push(
    `${fx(ms, 0)} ms (median of ${REPS}; rounds ${pick('restore', () => true)
      .map((r) => fx(r.ms, 0))
      .join(', ')})\n`,
  );
  targets.push({ name: 'factor restored after a SIGKILL <= 2 s', pass: ms <= 2000, detail: `${fx(ms, 0)} ms` });
}
if (ONLY.includes('sticky') && MANAGERS.includes('backup')) {
  const ratio = pairedRatio('sticky', (r) => r.rps, 'off');
  md.push(
    '### Sticky load on one node: backup (3 nodes) against replication off\n\nmap: the machine’s reference row (the same app behind a hand-written in-memory Map session, bench/http/map-node.mjs, no clowder): ratios to it are comparable across machines.\n',
  );
  md.push(
    mdTable(
      ['row', 'req/s', '× Map', 'p99 ms', 'CPU µs/req', 'lost'],
      ['map', 'off', 'backup'].map((m) => {
        const rs = pick('sticky', (r) => r.manager === m);
        return [
          m,
          fmt(medianOf(rs, (r) => r.rps)),
          fx(m === 'map' ? 1 : pairedRatioOf('sticky', (r) => r.rps, m, 'map')),
          fx(medianOf(rs, (r) => r.p99)),
          fx(
            medianOf(rs, (r) => r.cpuUsPerReq),
            1,
          ),
          Math.max(...rs.map((r) => r.lost)),
        ];
      }),
      ['l', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  md.push('');
  targets.push({
    name: 'backup (3 nodes, sticky) >= 0.8x replication off',
    pass: ratio >= 0.8,
    detail: `${fx(ratio)}x`,
  });
}
const lost = sum(runs.map((r) => r.lost ?? 0));
targets.push({ name: 'no lost increment', pass: lost === 0, detail: `${lost} lost over every run` });
md.push(targetList(targets), '');
const text = md.join('\n');
console.log(`\n${text}`);
if (!args['no-save'])
  saveResults(
    resultsJson({
      benchmark: 'backup',
      startedAt,
      t0: T0,
      machine: info,
      settings: {
        reps: REPS,
        durationS: DURATION_S,
        warmupS: WARMUP_S,
        sessions: SESSIONS,
        held: HELD,
        backups: BACKUPS,
        forward: FORWARD,
        managers: MANAGERS,
        sizes: SIZES,
        only: ONLY,
        connections: CONNECTIONS,
      },
      rows: runs,
      targets,
    }),
    text,
  );
process.exit(0);
