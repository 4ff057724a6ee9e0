// Failover gap through a real load balancer: three `clowder start` nodes (the counter app at /app)
// behind HAProxy (examples/haproxy/haproxy.cfg) or nginx (examples/nginx/nginx.conf), ports
// rewritten, clients with cookies looping GET /app/counter through it, and --kills SIGKILLs of one
// node at a time (rotating; each killed node restarts before the next kill and new clients are
// added so that every node has sessions). One scenario per balancer and send mode.
//
//   npm run build && node bench/failover/run.mjs                        (20 kills, haproxy, async and sync)
//   node bench/failover/run.mjs --balancers=haproxy,nginx --kills=3 --no-save   (a smoke run)
//
// Per kill: the gap, from the SIGKILL to the first successful response for one of the killed
// node's sessions served elsewhere; the time until every one of its sessions was answered
// elsewhere; every client request that failed (an error or a status other than 200: the balancer
// should retry each GET); and lost increments (a client's requests are sequential, so each answer
// must count one more than the client's previous answer; fewer is a lost write). Reported per
// scenario: gap p50/p99/max over the kills, failed requests, lost increments.
// Targets: gap p99 <= 250 ms, no failed GET, 0 lost increments. Needs haproxy / nginx from apt.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseOptions } from '../lib/args.mjs';
import { machine, toolVersion } from '../lib/machine.mjs';
import { freePorts, installReaper, live, tempDir } from '../lib/proc.mjs';
import { createLog, fx, mdTable, reportHead, resultsJson, saveResults, targetList } from '../lib/report.mjs';
import { median, percentile } from '../lib/stats.mjs';
import { waitUntil } from '../lib/wait.mjs';

const USAGE = `node bench/failover/run.mjs [--kills=20] [--modes=async,sync] [--balancers=haproxy] [--manager=NAME] [--clients=30] [--concurrency=8] [--new-per-kill=6] [--no-save]`;
const { args, num } = parseOptions(
  ['kills', 'modes', 'balancers', 'manager', 'clients', 'concurrency', 'new-per-kill', 'no-save', 'help'],
  USAGE,
);
const KILLS = num('kills', 20, { positive: true });
const CLIENTS = num('clients', 30, { positive: true });
const CONCURRENCY = num('concurrency', 8, { positive: true });
const NEW_PER_KILL = num('new-per-kill', 6);
const list = (k, d) =>
  String(args[k] ?? d)
    .split(',')
    .filter(Boolean);
const MODES = list('modes', 'async,sync');
const BALANCERS = list('balancers', 'haproxy');
const MANAGER = args.manager === undefined ? undefined : String(args.manager);
for (const m of MODES) if (m !== 'async' && m !== 'sync') exitUsage(`--modes: "async" and/or "sync", not ${m}`);
for (const b of BALANCERS)
  if (b !== 'haproxy' && b !== 'nginx') exitUsage(`--balancers: "haproxy" and/or "nginx", not ${b}`);
const NAMES = ['node-a', 'node-b', 'node-c'];

function exitUsage(why) {
  console.error(`${why}\n${USAGE}`);
  process.exit(2);
}

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLI = join(root, 'dist/cli/main.js');
const COUNTER = join(root, 'examples/counter/app.mjs');
const t0 = performance.now();
const log = createLog(t0);
installReaper('failover');

/** The balancers' binaries and version lines (first line of `-v`). */
const tools = {};
for (const b of BALANCERS) {
  const bin = [b, `/usr/sbin/${b}`].find((x) => toolVersion(x, ['-v']) !== undefined);
  if (!bin) exitUsage(`${b} is not installed (apt-get install ${b})`);
  const version = toolVersion(bin, ['-v'])
    .split('\n')[0]
    .replace(/ [0-9/]+ - https?:.*/, '')
    .replace(/^nginx version: /, '')
    .trim();
  tools[b] = { bin, version };
}

/** The machine, read before anything runs (its load average is the one at the start). */
const info = machine(Object.fromEntries(Object.entries(tools).map(([k, v]) => [k, v.version])));

/** Starts the balancer `kind` in the foreground from a temp dir, its example config's ports rewritten. */
function startBalancer(kind, front, httpPorts) {
  const dir = tempDir(`clowder-failover-${kind}-`);
  const portMap = { 8080: front, 8081: httpPorts[0], 8082: httpPorts[1], 8083: httpPorts[2] };
  const example = kind === 'haproxy' ? 'examples/haproxy/haproxy.cfg' : 'examples/nginx/nginx.conf';
  const cfg = readFileSync(join(root, example), 'utf8').replace(
    /127\.0\.0\.1:(808[0-3])\b/g,
    (_m, p) => `127.0.0.1:${portMap[p]}`,
  );
  const file = join(dir, kind === 'haproxy' ? 'haproxy.cfg' : 'nginx.conf');
  writeFileSync(file, cfg);
  let argv;
  if (kind === 'haproxy') argv = ['-db', '-f', file];
  else {
    // As root, nginx's workers run as nobody: they must reach the temp paths.
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, 'tmp'));
    argv = ['-p', dir, '-c', file, '-e', join(dir, 'error.log'), '-g', 'daemon off;'];
  }
  const child = spawn(tools[kind].bin, argv, { stdio: ['ignore', 'inherit', 'inherit'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.errorLog = kind === 'nginx' ? join(dir, 'error.log') : undefined;
  return child;
}

/** Ends `children` by PID (SIGTERM, then the reaper's SIGKILL on exit for any left after 5 s). */
async function stopChildren(children) {
  for (const child of children) {
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {}
  }
  await Promise.race([
    Promise.all(
      children.map((c) => (c.exitCode !== null || c.signalCode !== null ? 0 : new Promise((r) => c.once('exit', r)))),
    ),
    new Promise((r) => setTimeout(r, 5000).unref()),
  ]);
}

/** One scenario: 3 nodes in send mode `mode` behind `kind`, KILLS kills. Returns its summary row. */
async function scenario(kind, mode) {
  const ports = await freePorts(7);
  const [front, httpPorts, clusterPorts] = [ports[0], ports.slice(1, 4), ports.slice(4)];
  const members = clusterPorts.map((p) => `127.0.0.1:${p}`).join(',');
  const nodes = new Map();
  const children = new Set();

  /** Starts node `name` and resolves once its --json ready line came. */
  function startNode(name) {
    const i = NAMES.indexOf(name);
    const argv = [CLI, 'start', '--json', '--name', name, '--port', String(httpPorts[i])];
    argv.push('--cluster-port', String(clusterPorts[i]), '--membership', 'static', '--members', members);
    argv.push('--send', mode, '--app', `/app=${COUNTER}`);
    if (MANAGER !== undefined) argv.push('--manager', MANAGER);
    const child = spawn(process.execPath, argv, {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, CLOWDER_LOG_LEVEL: 'warn' },
    });
    live.add(child);
    children.add(child);
    child.once('exit', () => {
      live.delete(child);
      children.delete(child);
    });
    nodes.set(name, child);
    return new Promise((resolveReady, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('"ready"')) resolveReady(child);
      });
      child.once('exit', (code, signal) => reject(new Error(`${name} exited (${code ?? signal}) before ready`)));
    });
  }

  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  /** GET /app/counter through the balancer; resolves { status, node, count, cookie } or { error }. */
  function counter(cookie) {
    return new Promise((done) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: front,
          path: '/app/counter?payload=256',
          agent,
          timeout: 15_000,
          headers: cookie ? { cookie: `JSESSIONID=${cookie}` } : {},
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d) => {
            body += d;
          });
          res.on('end', () => {
            const set = /JSESSIONID=([^;]*)/.exec(String(res.headers['set-cookie'] ?? ''))?.[1];
            const count = Number(/count=(\d+)/.exec(body)?.[1]);
            const node = /node=(\S+)/.exec(body)?.[1];
            if (res.statusCode !== 200) done({ status: res.statusCode, body: body.slice(0, 120) });
            else done({ status: res.statusCode, node, count, cookie: set });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (error) => done({ error: error.message }));
      req.end();
    });
  }

  const clients = [];
  async function addClient() {
    const r = await counter(undefined);
    if (r.status !== 200 || !r.cookie) throw new Error(`a new session through ${kind} failed: ${JSON.stringify(r)}`);
    clients.push({ cookie: r.cookie, node: r.node, count: r.count, busy: false });
  }

  // The load: CONCURRENCY loops over the clients, each client one request at a time.
  let observe = () => {};
  let running = true;
  let failed = 0;
  let lost = 0;
  let requests = 0;
  const failures = [];
  let next = 0;
  async function loop() {
    while (running) {
      let c;
      for (let tries = 0; tries < clients.length && (c === undefined || c.busy); tries++)
        c = clients[next++ % clients.length];
      if (c === undefined || c.busy) {
        await new Promise((r) => setImmediate(r));
        continue;
      }
      c.busy = true;
      const sentAt = performance.now();
      const r = await counter(c.cookie);
      c.busy = false;
      requests++;
      if (r.status !== 200) {
        failed++;
        failures.push({ at: +(sentAt - t0).toFixed(0), ...r });
        continue;
      }
      // A failed attempt may have been applied before its answer was lost: more is not a loss.
      if (r.count < c.count + 1) lost += c.count + 1 - r.count;
      c.count = Math.max(c.count, r.count);
      if (r.cookie) c.cookie = r.cookie;
      const before = c.node;
      c.node = r.node;
      observe(c, before, performance.now());
    }
  }

  const kills = [];
  let loops = [];
  let balancer;
  try {
    for (const name of NAMES) await startNode(name);
    balancer = startBalancer(kind, front, httpPorts);
    children.add(balancer);
    await waitUntil(async () => (await counter(undefined)).status === 200, {
      what: `${kind} answering`,
      timeoutMs: 10_000,
    });
    for (let i = 0; i < CLIENTS; i++) await addClient();
    log(`${kind} ${tools[kind].version}, send ${mode}: 3 nodes; ${CLIENTS} clients, ${CONCURRENCY} in flight`);
    loops = Array.from({ length: CONCURRENCY }, loop);

    for (let k = 0; k < KILLS; k++) {
      const victim = NAMES[k % NAMES.length];
      await waitUntil(() => clients.some((c) => c.node === victim), {
        what: `a client on ${victim}`,
        timeoutMs: 10_000,
      });
      const orphans = new Set(clients.filter((c) => c.node === victim));
      const failedBefore = failed;
      const lostBefore = lost;
      let first = NaN;
      let all = NaN;
      const pending = new Set(orphans);
      const killedAt = performance.now();
      observe = (c, _before, at) => {
        if (!pending.has(c) || c.node === victim) return;
        if (Number.isNaN(first)) first = at - killedAt;
        pending.delete(c);
        if (pending.size === 0) all = at - killedAt;
      };
      const dead = nodes.get(victim);
      process.kill(dead.pid, 'SIGKILL');
      await waitUntil(() => pending.size === 0, {
        what: `every ${victim} session served elsewhere`,
        timeoutMs: 30_000,
      });
      observe = () => {};
      if (dead.exitCode === null && dead.signalCode === null) await new Promise((r) => dead.once('exit', r));
      await startNode(victim);
      // Its share back: new clients until one lands on it (the balancer saw it up).
      await waitUntil(
        async () => {
          await addClient();
          return clients.at(-1).node === victim;
        },
        { what: `a new client on the restarted ${victim}`, timeoutMs: 15_000, intervalMs: 50 },
      );
      for (let i = 0; i < NEW_PER_KILL; i++) await addClient();
      kills.push({
        victim,
        sessions: orphans.size,
        gapMs: +first.toFixed(1),
        allMs: +all.toFixed(1),
        failed: failed - failedBefore,
        lost: lost - lostBefore,
      });
      log(
        `${kind}/${mode} kill ${k + 1}/${KILLS} ${victim}: gap ${fx(first, 1)} ms, all ${orphans.size} sessions ${fx(all, 1)} ms, failed ${failed - failedBefore}, lost ${lost - lostBefore}`,
      );
    }
  } finally {
    running = false;
    await Promise.all(loops);
    agent.destroy();
    await stopChildren([...children]);
  }
  if (failures.length > 0) {
    console.log(`${kind}/${mode} failures:`, failures.slice(0, 10));
    if (balancer?.errorLog) console.log(readFileSync(balancer.errorLog, 'utf8').split('\n').slice(-15).join('\n'));
  }
  const gaps = kills.map((k) => k.gapMs);
  return {
    row: `${kind}-${mode}`,
    balancer: kind,
    balancerVersion: tools[kind].version,
    mode,
    kills: kills.length,
    gapP50Ms: median(gaps),
    gapP99Ms: percentile(gaps, 99),
    gapMaxMs: Math.max(...gaps),
    allP99Ms: percentile(
      kills.map((k) => k.allMs),
      99,
    ),
    requests,
    failed,
    lost,
    rounds: kills,
  };
}

const rows = [];
for (const kind of BALANCERS) for (const mode of MODES) rows.push(await scenario(kind, mode));

const targets = rows.flatMap((r) => [
  { name: `${r.row}: failover gap p99 <= 250 ms`, pass: r.gapP99Ms <= 250, detail: `${fx(r.gapP99Ms, 1)} ms` },
  { name: `${r.row}: no failed GET`, pass: r.failed === 0, detail: `${r.failed} of ${r.requests} requests failed` },
  { name: `${r.row}: no lost increment`, pass: r.lost === 0, detail: `${r.lost} lost` },
]);
const startedAt = new Date(Date.now() - (performance.now() - t0)).toISOString();
const md = [
  reportHead('Failover gap through a load balancer', startedAt, info),
  `${KILLS} SIGKILLs per row, ${CLIENTS}+ clients looping GET /app/counter (each one request at a time), ${CONCURRENCY} in flight, the balancers' example configs${MANAGER ? `, --manager ${MANAGER}` : ''}. Times in ms.\n`,
  mdTable(
    ['row', 'gap p50', 'gap p99', 'gap max', 'all sessions p99', 'requests', 'failed', 'lost'],
    rows.map((r) => [
      r.row,
      fx(r.gapP50Ms, 1),
      fx(r.gapP99Ms, 1),
      fx(r.gapMaxMs, 1),
      fx(r.allP99Ms, 1),
      r.requests,
      r.failed,
      r.lost,
    ]),
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  ),
  '',
  targetList(targets),
  '',
].join('\n');
console.log(`\n${md}`);
if (!args['no-save'])
  saveResults(
    resultsJson({
      benchmark: 'failover',
      startedAt,
      t0,
      machine: info,
      settings: {
        kills: KILLS,
        clients: CLIENTS,
        concurrency: CONCURRENCY,
        newPerKill: NEW_PER_KILL,
        modes: MODES,
        balancers: BALANCERS,
        manager: MANAGER ?? 'default',
      },
      rows,
      targets,
    }),
    md,
  );
process.exit(0);
