// Failover gap through HAProxy: three `clowder start` nodes (the counter app at /app) behind the
// real HAProxy with examples/haproxy/haproxy.cfg (ports rewritten), clients with cookies looping
// GET /app/counter through it, and --kills SIGKILLs of one node at a time (rotating; each killed
// node restarts before the next kill and new clients are added so that every node has sessions).
//
//   npm run build && node bench/failover/run.mjs              (20 kills)
//   node bench/failover/run.mjs --kills=3 --no-save           (a smoke run)
//
// Per kill: the gap, from the SIGKILL to the first successful response for one of the killed
// node's sessions served elsewhere; the time until every one of its sessions was answered
// elsewhere; and every client request that failed (an error or a status other than 200: HAProxy
// should retry each GET). Reported: gap p50/p99/max over the kills and the failed requests.
// Targets: gap p99 <= 250 ms, no failed GET. Needs haproxy (apt-get install haproxy).
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
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

const USAGE = `node bench/failover/run.mjs [--kills=20] [--clients=30] [--concurrency=8] [--new-per-kill=6] [--no-save]`;
const { args, num } = parseOptions(['kills', 'clients', 'concurrency', 'new-per-kill', 'no-save', 'help'], USAGE);
const KILLS = num('kills', 20, { positive: true });
const CLIENTS = num('clients', 30, { positive: true });
const CONCURRENCY = num('concurrency', 8, { positive: true });
const NEW_PER_KILL = num('new-per-kill', 6);
const NAMES = ['node-a', 'node-b', 'node-c'];

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLI = join(root, 'dist/cli/main.js');
const COUNTER = join(root, 'examples/counter/app.mjs');
const t0 = performance.now();
const log = createLog(t0);
installReaper('failover');

const haproxyBin = ['haproxy', '/usr/sbin/haproxy'].find((b) => toolVersion(b, ['-v']) !== undefined);
if (!haproxyBin) {
  console.error('haproxy is not installed (apt-get install haproxy)');
  process.exit(2);
}
const haproxyVersion = toolVersion(haproxyBin, ['-v'])
  .split('\n')[0]
  .replace(/ [0-9/]+ - https?:.*/, '')
  .trim();

const ports = await freePorts(7);
const [front, httpPorts, clusterPorts] = [ports[0], ports.slice(1, 4), ports.slice(4)];
const members = clusterPorts.map((p) => `127.0.0.1:${p}`).join(',');
const nodes = new Map();

/** Starts node `name` and resolves once its --json ready line came. */
function startNode(name) {
  const i = NAMES.indexOf(name);
  const child = spawn(
    process.execPath,
    [
      CLI,
      'start',
      '--json',
      '--name',
      name,
      '--port',
      String(httpPorts[i]),
      '--cluster-port',
      String(clusterPorts[i]),
    ].concat(['--membership', 'static', '--members', members, '--app', `/app=${COUNTER}`]),
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CLOWDER_LOG_LEVEL: 'warn' } },
  );
  live.add(child);
  child.once('exit', () => live.delete(child));
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

// HAProxy from the example config, ports rewritten, in the foreground from a temp dir.
const dir = tempDir('clowder-failover-');
const portMap = { 8080: front, 8081: httpPorts[0], 8082: httpPorts[1], 8083: httpPorts[2] };
const cfg = readFileSync(join(root, 'examples/haproxy/haproxy.cfg'), 'utf8').replace(
  /127\.0\.0\.1:(808[0-3])\b/g,
  (_m, p) => `127.0.0.1:${portMap[p]}`,
);
writeFileSync(join(dir, 'haproxy.cfg'), cfg);

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
/** GET /app/counter through HAProxy; resolves { status, node, cookie } or { error }. */
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
          done({ status: res.statusCode, node: /node=(\S+)/.exec(body)?.[1], cookie: set });
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
  if (r.status !== 200 || !r.cookie) throw new Error(`a new session through HAProxy failed: ${JSON.stringify(r)}`);
  clients.push({ cookie: r.cookie, node: r.node });
}

// The load: CONCURRENCY loops over the clients; each response is one observation.
let observe = () => {};
let running = true;
let failed = 0;
let requests = 0;
const failures = [];
let next = 0;
async function loop() {
  while (running) {
    const c = clients[next++ % clients.length];
    const sentAt = performance.now();
    const r = await counter(c.cookie);
    requests++;
    if (r.status !== 200) {
      failed++;
      failures.push({ at: +(sentAt - t0).toFixed(0), ...r });
      continue;
    }
    if (r.cookie) c.cookie = r.cookie;
    const before = c.node;
    c.node = r.node;
    observe(c, before, performance.now());
  }
}

const kills = [];
try {
  for (const name of NAMES) await startNode(name);
  const haproxy = spawn(haproxyBin, ['-db', '-f', join(dir, 'haproxy.cfg')], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  live.add(haproxy);
  await waitUntil(async () => (await counter(undefined)).status === 200, {
    what: 'HAProxy answering',
    timeoutMs: 10_000,
  });
  for (let i = 0; i < CLIENTS; i++) await addClient();
  log(`3 nodes behind ${haproxyVersion}; ${CLIENTS} clients, ${CONCURRENCY} in flight`);
  const loops = Array.from({ length: CONCURRENCY }, loop);

  for (let k = 0; k < KILLS; k++) {
    const victim = NAMES[k % NAMES.length];
    await waitUntil(() => clients.some((c) => c.node === victim), { what: `a client on ${victim}`, timeoutMs: 10_000 });
    const orphans = new Set(clients.filter((c) => c.node === victim));
    const failedBefore = failed;
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
    process.kill(nodes.get(victim).pid, 'SIGKILL');
    await waitUntil(() => pending.size === 0, { what: `every ${victim} session served elsewhere`, timeoutMs: 30_000 });
    observe = () => {};
    const dead = nodes.get(victim);
    if (dead.exitCode === null && dead.signalCode === null) await new Promise((r) => dead.once('exit', r));
    await startNode(victim);
    // Its share back: new clients until one lands on it (HAProxy's health check saw it up).
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
    });
    log(
      `kill ${k + 1}/${KILLS} ${victim}: gap ${fx(first, 1)} ms, all ${orphans.size} sessions ${fx(all, 1)} ms, failed ${failed - failedBefore}`,
    );
  }
  running = false;
  await Promise.all(loops);
} finally {
  running = false;
  agent.destroy();
  // Graceful stops (by PID); whatever is still running after 5 s is SIGKILLed by the reaper on exit.
  const children = [...live];
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

const gaps = kills.map((k) => k.gapMs);
const summary = {
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
};
const targets = [
  { name: 'failover gap p99 <= 250 ms', pass: summary.gapP99Ms <= 250, detail: `${fx(summary.gapP99Ms, 1)} ms` },
  { name: 'no failed GET', pass: failed === 0, detail: `${failed} of ${requests} requests failed` },
];
const startedAt = new Date(Date.now() - (performance.now() - t0)).toISOString();
const info = machine({ haproxy: haproxyVersion });
const md = [
  reportHead('Failover gap through HAProxy', startedAt, info),
  `${kills.length} SIGKILLs, ${CLIENTS}+ clients looping GET /app/counter, ${CONCURRENCY} in flight, ${haproxyVersion}, examples/haproxy/haproxy.cfg.\n`,
  mdTable(
    ['gap p50', 'gap p99', 'gap max', 'all sessions p99', 'requests', 'failed'],
    [
      [
        fx(summary.gapP50Ms, 1),
        fx(summary.gapP99Ms, 1),
        fx(summary.gapMaxMs, 1),
        fx(summary.allP99Ms, 1),
        requests,
        failed,
      ],
    ],
    ['r', 'r', 'r', 'r', 'r', 'r'],
  ),
  '',
  targetList(targets),
  '',
].join('\n');
console.log(`\n${md}`);
if (failures.length > 0) console.log('failures:', failures.slice(0, 10));
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
        haproxy: haproxyVersion,
      },
      rows: [{ row: 'haproxy', ...summary, rounds: kills }],
      targets,
    }),
    md,
  );
process.exit(0);
