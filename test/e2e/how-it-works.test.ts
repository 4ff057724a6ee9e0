/**
 * Tomcat's clustering HOW-TO, "How it works", automated against two real `clowder start`
 * processes (static membership on 127.0.0.1, synchronous replication):
 *   1. A starts alone and serves at once;
 *   2. B starts and receives A's sessions before it serves;
 *   3. S1 is created on A and updated;
 *   4. A is killed (SIGKILL);
 *   5. B serves S1 with its latest value and re-issues its cookie with route B;
 *   6. A restarts and holds S1 (with B's updates) before it serves;
 *   7. S1 invalidated on A is gone on B;
 *   8. S2 created on B expires on A.
 * Then, on the same two nodes, a session kept in use on one node (reads only, short timeout)
 * must stay alive on the other: its copy is kept, and a request that reaches the other node
 * finds it valid (instead of expiring it cluster-wide).
 *
 * The nodes run the counter example wrapped with one read-only probe, `/app/peek?id=…`: whether
 * the node's session manager holds a session, and why it destroyed it (from a `sessionDestroyed`
 * listener registered in the module's `setup({ manager })`), without touching the session:
 * polling `/app/read` would itself keep a session alive (and expire it lazily), so it cannot show
 * background expiry.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import {
  type CliProcess,
  COUNTER_APP,
  cleanEnv,
  destroyAll,
  fields,
  get,
  type LogLine,
  startNode,
} from '../helpers/node-process.js';
import { freePorts, waitFor } from '../helpers/wait.js';

const PROBE_APP = `
import counter from ${JSON.stringify(pathToFileURL(COUNTER_APP).href)};
export const distributable = true;
let manager;
const destroyed = new Map();
export function setup(context) {
  manager = context.manager;
  manager.on('sessionDestroyed', (s, reason, replicated) =>
    destroyed.set(s.id, replicated ? reason + '-replicated' : reason),
  );
}
export default function app(req, res) {
  const url = req.url ?? '/';
  if (!url.startsWith('/peek?')) return counter(req, res);
  const id = new URLSearchParams(url.slice('/peek?'.length)).get('id');
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end(
    'held=' + (manager.sessions.has(id) ? 1 : 0) + ' destroyed=' + (destroyed.get(id) ?? '-') + ' node=' + req.jvmRoute + '\\n',
  );
}
`;

describe('how it works (Tomcat clustering HOW-TO), two clowder processes', () => {
  const procs: CliProcess[] = [];
  let dir = '';
  after(async () => {
    await destroyAll(procs);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  let app = '';
  let config = '';
  /** What the node at `url` knows of session `id`, without touching it. */
  const peek = async (url: string, id: string) => {
    const r = await get(`${url}/app/peek?id=${id}`);
    assert.equal(r.status, 200, `probe: ${r.body}`);
    const f = fields(r.body);
    return { held: f.held === '1', destroyed: f.destroyed };
  };
  /** Whether the node at `url` holds session `id` (without touching it). */
  const held = async (url: string, id: string) => (await peek(url, id)).held;
  /** The two nodes the sequence leaves running, for the tests after it. */
  let cluster: { a: CliProcess; b: CliProcess } | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'clowder-how-it-works-'));
    app = join(dir, 'probe-app.mjs');
    config = join(dir, 'cluster.yaml');
    await writeFile(app, PROBE_APP);
    await writeFile(config, 'sessions:\n  processExpiresFrequency: 1\n');
  });

  test('start, state transfer, failover, restart, invalidation and expiry', { timeout: 120_000 }, async (t) => {
    const [httpA, httpB, cpA, cpB] = await freePorts(4);
    const members = `127.0.0.1:${cpA},127.0.0.1:${cpB}`;
    const start = (name: string, http: number, cp: number) => {
      const p = startNode(
        name,
        [
          '--name',
          name,
          '--port',
          String(http),
          '--cluster-port',
          String(cp),
          '--membership',
          'static',
          '--members',
          members,
          '--app',
          `/app=${app}`,
          '--send',
          'sync',
          '--config',
          config,
          '--json',
        ],
        cleanEnv({ CLOWDER_LOG_LEVEL: 'info' }),
      );
      procs.push(p);
      return p;
    };
    const transferComplete = (l: LogLine) => l.msg === 'state transfer complete' && l.context === '/app';
    const nodeReady = (l: LogLine) => l.msg === 'node ready';
    const counter = async (url: string, cookie?: string) => {
      const r = await get(`${url}/app/counter`, cookie);
      assert.equal(r.status, 200, r.body);
      return r;
    };
    const timings: Record<string, number> = {};

    // 1. A starts alone: nobody to take sessions from, it serves at once.
    const a = start('A', httpA!, cpA!);
    const readyA = await a.ready();
    assert.deepEqual(readyA, {
      event: 'ready',
      node: 'A',
      http: `http://127.0.0.1:${httpA}`,
      cluster: `127.0.0.1:${cpA}`,
    });
    timings.aReadyMs = a.readyAt - a.startedAt;
    await a.waitLog(
      (l) => l.msg === 'no other member serves this context: nothing to transfer',
      'A found nobody to transfer from',
    );
    assert.equal((await get(`${a.url}/app/health`)).body, 'ok node=A\n');

    // 2. Sessions on A first; then B starts and must hold them when it says it is ready.
    const early: { cookie: string; count: number }[] = [];
    for (let i = 0; i < 3; i++) {
      let r = await counter(a.url);
      const cookie = r.session!;
      assert.match(cookie, /^[0-9A-F]{32}\.A$/);
      for (let k = 0; k <= i; k++) r = await counter(a.url, cookie);
      early.push({ cookie, count: i + 2 });
      assert.equal(fields(r.body).count, String(i + 2));
    }
    const b = start('B', httpB!, cpB!);
    await b.ready();
    // No waiting: the first requests after the ready line already see A's values.
    const reads = await Promise.all(early.map((e) => get(`${b.url}/app/read`, e.cookie)));
    timings.bFirstReadsAfterReadyMs = Date.now() - b.readyAt;
    reads.forEach((r, i) => {
      assert.equal(r.status, 200, r.body);
      assert.equal(r.body, `count=${early[i]!.count} node=B\n`, `session ${i} read on B right at its ready line`);
    });
    const bTransfer = await b.waitLog(transferComplete, 'B: state transfer complete');
    // The context is bound once, by the node: no session component writes it again.
    const twice = b.rawLogs.filter((l) => l.split('"context":').length > 2);
    assert.deepEqual(twice, [], 'log lines naming the context twice');
    assert.equal(bTransfer.donor, 'A');
    assert.equal(bTransfer.sessions, early.length);
    // The node's own order of events (its log), not the moment the test read a line.
    const bReady = await b.waitLog(nodeReady, 'B: node ready');
    assert.ok(b.logs.indexOf(bTransfer) < b.logs.indexOf(bReady), 'B finished the state transfer before it was ready');
    const aAddsB = await a.waitLog((l) => l.msg === 'member added' && l.member === 'B', 'A: B added');
    assert.ok((aAddsB.time as number) <= (bReady.time as number), 'A knew B (so replicates to it) before B served');
    const aSent = await a.waitLog((l) => l.msg === 'sent every session to a starting member', 'A: sent sessions');
    assert.equal(aSent.to, 'B');
    assert.equal(aSent.sessions, early.length);
    timings.bReadyMs = b.readyAt - b.startedAt;

    // 3. S1 created on A and updated (synchronous replication: each answer came after B
    // acknowledged the change; sync-mode.test.ts proves that wait by holding B's acknowledgements).
    let r = await counter(a.url);
    const s1Cookie = r.session!;
    const s1 = s1Cookie.split('.')[0]!;
    assert.equal(fields(r.body).id, s1);
    for (let i = 2; i <= 5; i++) {
      r = await counter(a.url, s1Cookie);
      assert.equal(r.body, `count=${i} node=A id=${s1}\n`);
    }

    // 4. A dies without a word.
    const killedAt = Date.now();
    a.kill('SIGKILL');

    // 5. B serves S1 at once with the last value A acknowledged, and takes the session over.
    r = await get(`${b.url}/app/read`, s1Cookie);
    timings.failoverReadAfterKillMs = Date.now() - killedAt;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'count=5 node=B\n', 'S1 on B right after A was SIGKILLed');
    assert.equal(r.session, `${s1}.B`, 'B re-issues the cookie with its own route');
    assert.equal((await a.exited()).signal, 'SIGKILL');
    const removed = await b.waitLog(
      (l) => l.msg === 'member removed' && l.member === 'A',
      'B: A removed after SIGKILL',
    );
    timings.killDetectedMs = (removed.time as number) - killedAt;
    // Detected by its connection, not by missing heartbeats for dropTime (that reason is 'timeout').
    assert.equal(removed.reason, 'unreachable');
    // Users keep working on B.
    for (let i = 6; i <= 8; i++) {
      r = await counter(b.url, `${s1}.B`);
      assert.equal(r.body, `count=${i} node=B id=${s1}\n`);
    }

    // 6. A restarts (same ports, new process) and holds S1, with B's updates, before it serves.
    const a2 = start('A', httpA!, cpA!);
    await a2.ready();
    r = await get(`${a2.url}/app/read`, `${s1}.B`);
    timings.aRestartFirstReadAfterReadyMs = Date.now() - a2.readyAt;
    assert.equal(r.body, 'count=8 node=A\n', 'S1 on the restarted A right at its ready line');
    assert.equal(r.session, `${s1}.A`);
    const aTransfer = await a2.waitLog(transferComplete, 'restarted A: state transfer complete');
    assert.equal(aTransfer.donor, 'B');
    assert.equal(aTransfer.sessions, early.length + 1);
    const a2Ready = await a2.waitLog(nodeReady, 'restarted A: node ready');
    assert.ok(
      a2.logs.indexOf(aTransfer) < a2.logs.indexOf(a2Ready),
      'A finished the state transfer before it was ready',
    );
    timings.aRestartReadyMs = a2.readyAt - a2.startedAt;
    // B replicates to the restarted A from the moment A serves: B added it before A's ready line.
    const bAddsA = await b.waitLog(
      (l) => l.msg === 'member added' && l.member === 'A' && (l.time as number) >= a2.startedAt,
      'B: the restarted A added',
    );
    assert.ok((bAddsA.time as number) <= (a2Ready.time as number), 'B knew the restarted A before A served');

    // 7. S1 invalidated on A is gone on B, and B does not bring it back.
    r = await get(`${a2.url}/app/invalidate`, `${s1}.A`);
    const invalidatedAt = Date.now();
    assert.equal(r.body, `invalidated=1 node=A id=${s1}\n`);
    assert.equal(r.session, undefined, 'no Set-Cookie after the invalidation (as express-session after destroy)');
    await waitFor(async () => !(await held(b.url, s1)), 'S1 gone on B');
    timings.invalidationOnBMs = Date.now() - invalidatedAt;
    r = await get(`${b.url}/app/read`, `${s1}.A`);
    assert.equal(r.body, 'count=0 node=B\n');
    assert.equal(r.session, undefined, 'reading an invalidated session sets no cookie');
    r = await counter(b.url, `${s1}.A`);
    assert.notEqual(fields(r.body).id, s1, 'B never re-creates an invalidated session id');
    assert.equal(fields(r.body).count, '1');
    assert.deepEqual(await peek(b.url, s1), { held: false, destroyed: 'invalidated-replicated' });
    assert.deepEqual(await peek(a2.url, s1), { held: false, destroyed: 'invalidated' });

    // 8. S2 created on B, given a 1 s timeout on B, expires on A too (processExpiresFrequency: 1).
    r = await counter(b.url);
    const s2Cookie = r.session!;
    const s2 = s2Cookie.split('.')[0]!;
    r = await get(`${b.url}/app/expire-soon?seconds=1`, s2Cookie);
    const shortenedAt = Date.now();
    assert.equal(r.body, 'expires-in=1 node=B\n');
    assert.equal(await held(a2.url, s2), true, 'S2 replicated to A (synchronous)');
    await waitFor(async () => !(await held(a2.url, s2)), 'S2 expired on A', { timeoutMs: 15_000, intervalMs: 50 });
    timings.s2GoneOnAMs = Date.now() - shortenedAt;
    assert.ok(timings.s2GoneOnAMs >= 800, `S2 gone on A after ${timings.s2GoneOnAMs} ms: not before its 1 s timeout`);
    assert.deepEqual(await peek(b.url, s2), { held: false, destroyed: 'expired' }, 'S2 expired on B, its primary');
    const onA = await peek(a2.url, s2);
    t.diagnostic(`S2 on A: ${onA.destroyed}`);
    assert.match(onA.destroyed ?? '', /^expired/);
    assert.equal((await get(`${a2.url}/app/read`, s2Cookie)).body, 'count=0 node=A\n');
    assert.equal((await get(`${b.url}/app/read`, s2Cookie)).body, 'count=0 node=B\n');

    t.diagnostic(`timings (ms): ${JSON.stringify(timings)}`);
    cluster = { a: a2, b };
  });

  // Tomcat's DeltaSession replicates an access when the session's own maxInactiveInterval has
  // passed since its last replication; a backup copy must never look idle while the session is used.
  test('a session in use on B, with a 1 s timeout, keeps its copy on A', { timeout: 60_000 }, async (t) => {
    assert.ok(cluster, 'the nodes of the sequence above are running');
    const { a, b } = cluster;
    let r = await get(`${b.url}/app/counter`);
    const cookie = r.session!;
    const id = cookie.split('.')[0]!;
    r = await get(`${b.url}/app/expire-soon?seconds=1`, cookie);
    assert.equal(r.body, 'expires-in=1 node=B\n');
    assert.equal(await held(a.url, id), true);
    // The user reads the session on B every 200 ms for 4 s (four times its timeout; A's
    // background expiry runs every second and would drop a copy idle for twice the timeout).
    const from = Date.now();
    let lostAfter = -1;
    while (Date.now() - from < 4000) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal((await get(`${b.url}/app/read`, cookie)).body, 'count=1 node=B\n', 'S3 in use on B');
      if (lostAfter < 0 && !(await held(a.url, id))) lostAfter = Date.now() - from;
    }
    t.diagnostic(
      `copy on A ${lostAfter < 0 ? 'kept' : `lost ${lostAfter} ms into the reads (${(await peek(a.url, id)).destroyed})`}`,
    );
    assert.equal(lostAfter, -1, `A dropped its copy of a session in use on B after ${lostAfter} ms`);
    // A failover now would keep the user's session.
    assert.equal((await get(`${a.url}/app/read`, cookie)).body, 'count=1 node=A\n');
  });

  test('a request on A finds valid a session in use on B (1 s timeout)', { timeout: 60_000 }, async (t) => {
    assert.ok(cluster, 'the nodes of the sequence above are running');
    const { a, b } = cluster;
    let r = await get(`${b.url}/app/counter`);
    const cookie = r.session!;
    const id = cookie.split('.')[0]!;
    await get(`${b.url}/app/expire-soon?seconds=1`, cookie);
    // Used on B every 200 ms for 1.2 s: never idle for its 1 s timeout.
    const from = Date.now();
    while (Date.now() - from < 1200) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal((await get(`${b.url}/app/read`, cookie)).body, 'count=1 node=B\n');
    }
    // One request reaches A (a balancer's mistake, or B just died): the session is alive.
    r = await get(`${a.url}/app/read`, cookie);
    t.diagnostic(`request on A ${Date.now() - from} ms after the timeout was set on B`);
    const onB = await peek(b.url, id);
    t.diagnostic(`on A: ${r.body.trim()}; on B: held=${onB.held} destroyed=${onB.destroyed}`);
    assert.equal(r.body, 'count=1 node=A\n', 'A serves the session that is in use on B');
    assert.deepEqual(onB, { held: true, destroyed: '-' }, 'the request on A did not end the session on B');
  });

  test('both nodes stop gracefully', async () => {
    assert.ok(cluster);
    const [exitA, exitB] = await Promise.all([cluster.a.stop(), cluster.b.stop()]);
    assert.deepEqual(exitA, { code: 0, signal: null });
    assert.deepEqual(exitB, { code: 0, signal: null });
  });
});
