/**
 * examples/node-cluster as a user runs it: a node:cluster primary forks 3 workers sharing one HTTP
 * port, each a clowder member (static list on loopback). Connections are handed out round-robin,
 * so consecutive requests of one session land on different workers: no stickiness is needed
 * (ownership moves the session). One worker is SIGKILLed by PID; the primary forks it again; the
 * restarted worker holds every session before it serves; every session keeps its latest value,
 * including writes made while that worker was down.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { cleanEnv, get, portIsFree, REPO } from '../helpers/node-process.js';
import { freePorts, isolatedMulticast, waitFor } from '../helpers/wait.js';

const WORKERS = 3;
const SESSIONS = 12;

interface Event {
  event: string;
  worker?: number;
  pid?: number;
  sessions?: number;
}

const primaries: ChildProcess[] = [];
after(async () => {
  const hung: string[] = [];
  for (const primary of primaries) if (!(await stopPrimary(primary))) hung.push(String(primary.pid));
  if (hung.length > 0) throw new Error(`primary ${hung.join(', ')} did not exit within 15 s of SIGTERM (SIGKILLed)`);
});

/**
 * SIGTERM: the primary stops its workers gracefully; SIGKILL if it has not exited in 15 s.
 * Resolves false when it had to be killed (the caller reports it: a hung stop is a failure).
 */
async function stopPrimary(primary: ChildProcess): Promise<boolean> {
  if (primary.exitCode !== null || primary.signalCode !== null) return true;
  const exited = new Promise((r) => primary.once('exit', r));
  primary.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000).unref())]);
  if (primary.exitCode !== null || primary.signalCode !== null) return true;
  primary.kill('SIGKILL');
  await exited;
  return false;
}

/** Three consecutive free ports for the workers' cluster receivers (CLUSTER_BASE_PORT + i). */
async function consecutiveFreePorts(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    let free = true;
    for (let i = 0; i < n && free; i++) free = await portIsFree(base + i);
    if (free) return base;
  }
  throw new Error('no run of free ports found');
}

test('node:cluster workers (static member list) share sessions; a SIGKILLed worker is restarted and loses nothing', () =>
  scenario({}));

test('the same with multicast membership on loopback (each worker its own group socket)', () =>
  scenario({ MEMBERSHIP: 'multicast', MULTICAST_PORT: String(isolatedMulticast().port) }));

async function scenario(extraEnv: Record<string, string>): Promise<void> {
  const events: Event[] = [];
  let stderr = '';
  const ready = (worker: number) => events.find((e) => e.event === 'worker-ready' && e.worker === worker);
  const [httpPort] = await freePorts(1);
  const base = await consecutiveFreePorts(WORKERS + 2);
  const primary = spawn(process.execPath, [join(REPO, 'examples/node-cluster/server.mjs')], {
    cwd: REPO,
    env: cleanEnv({
      PORT: String(httpPort),
      WORKERS: String(WORKERS),
      CLUSTER_BASE_PORT: String(base),
      CLOWDER_LOG_LEVEL: 'warn',
      ...extraEnv,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  primaries.push(primary);
  createInterface({ input: primary.stdout! }).on('line', (line) => {
    if (line.startsWith('{')) events.push(JSON.parse(line) as Event);
  });
  primary.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const diag = () => `events: ${JSON.stringify(events)}\nstderr: ${stderr.slice(-2000)}`;
  await waitFor(() => [0, 1, 2].every((w) => ready(w)), `${WORKERS} workers ready\n${diag()}`, {
    timeoutMs: 30_000,
    intervalMs: 20,
  });
  const url = `http://127.0.0.1:${httpPort}`;

  // Sessions and their latest values; each write may land on any worker.
  const cookies: string[] = [];
  const latest: string[] = [];
  const servedBy = new Set<string>();
  const put = async (i: number, value: string) => {
    const r = await get(`${url}/put?value=${value}`, cookies[i], 15_000);
    assert.equal(r.status, 200, r.body);
    if (r.session) cookies[i] = r.session;
    servedBy.add(String(r.headers['x-worker']).split(':')[0]!);
    latest[i] = value;
    assert.equal(JSON.parse(r.body).value, value);
  };
  for (let i = 0; i < SESSIONS; i++) await put(i, `s${i}-v1`);
  for (let round = 2; round <= 3; round++) for (let i = 0; i < SESSIONS; i++) await put(i, `s${i}-v${round}`);
  assert.equal(servedBy.size, WORKERS, `round-robin: every worker served writes (${[...servedBy]})`);

  // SIGKILL worker 1 by its PID; the primary sees it exit and forks it again.
  const victim = ready(1)!.pid!;
  process.kill(victim, 'SIGKILL');
  await waitFor(
    () => events.some((e) => e.event === 'worker-exit' && e.pid === victim),
    `the primary saw worker 1 (${victim}) exit\n${diag()}`,
  );
  // Writes while it is down (the sessions it owned are taken over by the others).
  for (let i = 0; i < SESSIONS; i++) await put(i, `s${i}-while-down`);

  const restarted = (await waitFor(
    () => events.find((e) => e.event === 'worker-ready' && e.worker === 1 && e.pid !== victim),
    `worker 1 restarted and ready\n${diag()}`,
    { timeoutMs: 30_000, intervalMs: 20 },
  ))!;
  assert.equal(restarted.sessions, SESSIONS, 'the restarted worker held every session before it served');

  // Every session reads its latest value, on every worker, the restarted one included.
  const readers = new Set<number>();
  await waitFor(
    async () => {
      for (let i = 0; i < SESSIONS; i++) {
        const r = await get(`${url}/get`, cookies[i], 15_000);
        assert.equal(r.status, 200, r.body);
        if (r.session) cookies[i] = r.session;
        const body = JSON.parse(r.body) as { worker: number; value: string; writes: number };
        assert.equal(body.value, latest[i], `session ${i} on worker ${body.worker}`);
        assert.equal(body.writes, 4, `session ${i}: four writes, none lost`);
        const [, pid] = String(r.headers['x-worker']).split(':');
        if (Number(pid) === restarted.pid) readers.add(i);
      }
      return readers.size > 0;
    },
    'a read served by the restarted worker',
    { timeoutMs: 20_000 },
  );
  // And it takes writes like the others.
  for (let i = 0; i < SESSIONS; i++) await put(i, `s${i}-after`);
  for (let i = 0; i < SESSIONS; i++) {
    const r = await get(`${url}/get`, cookies[i], 15_000);
    assert.equal(JSON.parse(r.body).value, `s${i}-after`);
  }
  assert.equal(events.filter((e) => e.event === 'worker-exit').length, 1, `only the killed worker exited\n${diag()}`);
  assert.ok(await stopPrimary(primary), `the primary exits within 15 s of SIGTERM\n${diag()}`);
}
