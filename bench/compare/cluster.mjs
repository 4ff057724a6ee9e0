// The compare harness's servers: child processes of servers/ (forkWorker), clowder clusters that
// see all their members, replicating Map servers that are connected, and the settle check on
// their replication counters.
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../lib/proc.mjs';
import { changeCounts, replicated, waitUntil, waitUntilOrNot } from '../lib/wait.mjs';
import { forkWorker, stopAll as stopWorkers } from '../lib/worker.mjs';
import { RedisProc } from './redis.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const SERVERS = join(here, 'servers');
export const APP = join(here, '..', '..', 'examples', 'counter', 'app.mjs');

export const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
/** GET http://127.0.0.1:port/path -> { status, body } (status 0 on a socket error). */
export function httpGet(port, path, timeoutMs = 2000) {
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
export async function clowderStats(port) {
  const r = await httpGet(port, '/_clowder/stats');
  if (r.status !== 200)
    throw new Error(`GET :${port}/_clowder/stats -> ${r.status} ${r.error ?? r.body.slice(0, 200)}`);
  return JSON.parse(r.body);
}

/** A server child (servers/<script>) of `spec` ({ name, port, … } as BENCH_SERVER); `port` kept on it. */
export function startServer(script, spec, { execArgv = [], tag = script } = {}) {
  const w = forkWorker(join(SERVERS, script), {
    name: spec.name,
    tag,
    execArgv,
    cwd: here,
    capture: true,
    env: { ...process.env, BENCH_SERVER: JSON.stringify(spec) },
  });
  return Object.assign(w, { port: spec.port, spec });
}

/** Servers stop gracefully on SIGTERM (profiles get written), SIGKILL after 8 s; redis its own way. */
export const stopAll = (procs) =>
  Promise.all(
    procs.map((p) => (p instanceof RedisProc ? p.stop() : stopWorkers([p], { signal: 'SIGTERM', graceMs: 8000 }))),
  );

let domainSeq = 0;
/** A fresh cluster domain, so no two clusters of a run ever see each other. */
export const newDomain = () => `bench-compare-${process.pid}-${domainSeq++}`;
export const NAMES = ['n1', 'n2', 'n3', 'n4'];
export const profArgv = (dir) => (dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : []);

/** Starts a clowder cluster of n nodes one after the other; resolves when each sees all the others. */
export async function startClowder(
  n,
  send,
  { execArgv = [], tag = 'clowder', script = 'clowder.mjs', ...options } = {},
) {
  const ports = await freePorts(2 * n);
  const domain = newDomain();
  const members = Array.from({ length: n }, (_, i) => `127.0.0.1:${ports[2 * i + 1]}`);
  const nodes = [];
  try {
    for (let i = 0; i < n; i++) {
      const spec = { name: NAMES[i], port: ports[2 * i], clusterPort: ports[2 * i + 1], members, domain, send };
      nodes.push(startServer(script, { ...spec, app: APP, ...options }, { execArgv, tag }));
      await nodes[i].ready;
    }
    let counts = [];
    await waitUntil(
      async () => {
        counts = await Promise.all(nodes.map(async (p) => (await clowderStats(p.port)).channel.membership.members));
        return counts.every((c) => c === n - 1);
      },
      { timeoutMs: 20_000, intervalMs: 25, what: () => `clowder members ${counts.join('/')} (want ${n - 1} each)` },
    );
  } catch (err) {
    await stopAll(nodes);
    throw err;
  }
  return nodes;
}

/**
 * `n` Map session servers, each pushing its changes to the others (map-peers.mjs), once every one
 * is connected to every other. visibleLog: peers log when they applied each count (the lag probe).
 */
export async function startMapReplicated(n, { tag, profDir, visibleLog = false }) {
  const ports = await freePorts(2 * n);
  const repl = (i) => `127.0.0.1:${ports[2 * i + 1]}`;
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const peers = Array.from({ length: n }, (_, j) => j).filter((j) => j !== i);
      const spec = {
        name: NAMES[i],
        port: ports[2 * i],
        replPort: ports[2 * i + 1],
        peers: peers.map(repl),
        visibleLog,
      };
      servers.push(startServer('map.mjs', spec, { tag, execArgv: profArgv(profDir) }));
    }
    await Promise.all(servers.map((s) => s.ready));
    for (const s of servers)
      await waitUntil(async () => (await httpGet(s.port, '/app/health')).body?.includes(`peers=${n - 1}`), {
        what: `${tag}: ${s.name} connects to its ${n - 1} peers`,
      });
  } catch (err) {
    await stopAll(servers);
    throw err;
  }
  return servers;
}

/**
 * Until every server of a replicating row (clowder: /_clowder/stats; map-replicated: its stats
 * command) has applied every change the others sent; false after 10 s. Other rows: at once.
 */
export async function settle(servers, { clowder, replicated: maps }) {
  if (servers.length < 2 || !(clowder || maps)) return true;
  const changes = async (s) =>
    clowder ? changeCounts((await clowderStats(s.port)).sessions?.[0]) : (await s.call('stats')).changes;
  return waitUntilOrNot(async () => replicated(await Promise.all(servers.map(changes))), { timeoutMs: 10_000 });
}
