/**
 * clowder/fastify over two nodes: @fastify/session's `request.session` API backed by clowder's
 * sessions — a write on one node is read on the other (the cookie re-homed), alternating writes
 * lose nothing (take-over from the owner), regenerate keeps only the listed keys under a new id,
 * destroy ends the session everywhere, an unknown id is never adopted, and after the first node
 * stops the other serves its sessions (failover).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { clowderSession } from '../../../src/http/fastify.js';
import { createSessions, type DeltaManager, type SessionCluster, silentLogger } from '../../../src/index.js';
import { CookieJar, closeClient, get, type HttpResponse, idOf, routeOf, throwFailures } from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';
import { type Pair, startPair } from './pair.js';

/** A request on /hold waits for this gate to open (a request in progress on its node). */
let gate: { promise: Promise<void>; open: () => void } | undefined;
function newGate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => {
    open = r;
  });
  gate = { promise, open };
  return gate;
}

async function server(sessions: SessionCluster): Promise<{ app: FastifyInstance; port: number }> {
  const app = Fastify();
  await app.register(clowderSession, { sessions });
  app.get('/set', async (request) => {
    const q = request.query as { k: string; v: string };
    request.session!.set(q.k, q.v);
    return { id: request.session!.sessionId };
  });
  app.get('/get', async (request) => {
    const q = request.query as { k: string };
    return { value: request.session!.get(q.k) ?? null };
  });
  app.get('/data', async (request) => ({ data: request.session!.toJSON() }));
  app.get('/inc', async (request) => {
    const s = request.session!;
    s.n = ((s.n as number | undefined) ?? 0) + 1; // property access, as @fastify/session allows
    return { n: s.n };
  });
  app.get('/hold', async (request) => {
    const s = request.session!;
    s.n = ((s.n as number | undefined) ?? 0) + 1;
    await gate?.promise;
    return { n: s.n };
  });
  app.get('/regenerate', async (request) => {
    const before = request.session!.sessionId;
    await request.session!.regenerate(['user']);
    return { before, after: request.session!.sessionId, data: request.session!.toJSON() };
  });
  app.get('/destroy', async (request) => {
    await request.session!.destroy();
    return { session: request.session };
  });
  app.get('/modified', async (request) => {
    const first = request.session!.isModified();
    request.session!.set('touched', true);
    return { first, after: request.session!.isModified() };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  return { app, port: typeof address === 'object' && address !== null ? address.port : 0 };
}

function json<T = Record<string, unknown>>(res: HttpResponse): T {
  assert.equal(res.status, 200, res.body);
  return JSON.parse(res.body) as T;
}

describe('clowder/fastify: request.session over two nodes', () => {
  let pair: Pair;
  let fx: FastifyInstance;
  let fy: FastifyInstance;
  let px: number;
  let py: number;
  let mx: DeltaManager;
  let my: DeltaManager;

  before(async () => {
    pair = await startPair();
    mx = pair.x.manager;
    my = pair.y.manager;
    ({ app: fx, port: px } = await server(pair.x));
    ({ app: fy, port: py } = await server(pair.y));
  });
  after(async () => {
    const closed = await Promise.allSettled([fx?.close(), fy?.close()]);
    await pair?.stop();
    closeClient();
    throwFailures(closed, 'closing the servers');
  });

  test('a write on one node is read on the other; the cookie is re-homed there', async () => {
    const jar = new CookieJar();
    const { id } = json<{ id: string }>(await jar.get(px, '/set?k=user&v=alice'));
    assert.equal(jar.id, id);
    assert.equal(routeOf(jar.cookie!), 'x');
    const onY = await jar.get(py, '/get?k=user');
    assert.deepEqual(json(onY), { value: 'alice' });
    assert.equal(idOf(jar.cookie!), id, 'same session');
    assert.equal(routeOf(jar.cookie!), 'y', 'Y re-issued the cookie with its route');
    assert.equal(my.sessions.get(id)?.ownerId, my.localId, 'Y took the session over to serve it');
  });

  test('a request that only reads creates no session and sets no cookie', async () => {
    const before = mx.sessions.size;
    const res = await get(px, '/get?k=user');
    assert.deepEqual(json(res), { value: null });
    assert.deepEqual(res.setCookie, []);
    assert.equal(mx.sessions.size, before);
  });

  test('alternating writes on the two nodes lose nothing', async () => {
    const jar = new CookieJar();
    await jar.get(px, '/set?k=user&v=bob');
    for (let i = 1; i <= 20; i++) assert.equal(json<{ n: number }>(await jar.get(i % 2 ? py : px, '/inc')).n, i);
    await waitFor(() => mx.sessions.get(jar.id)?.getAttribute('n') === 20, 'X to hold n = 20');
  });

  test('a request on the other node waits until the owner’s request in progress is done', async () => {
    const jar = new CookieJar();
    await jar.get(px, '/set?k=user&v=owner');
    const id = jar.id;
    const g = newGate();
    const onX = jar.get(px, '/hold'); // n = 1, then waits at the gate: X owns the session meanwhile
    await waitFor(() => mx.sessions.get(id)?.active === 1, 'the request on X to be in progress');
    const onY = get(py, '/inc', jar.cookie); // must not run on Y's copy while X's request runs
    await waitFor(() => mx.sessions.get(id)?.waiters !== undefined, 'Y to ask X for the session');
    g.open();
    assert.deepEqual(json(await onX), { n: 1 });
    assert.deepEqual(json(await onY), { n: 2 }, 'Y ran after X handed over, with its change');
    gate = undefined;
  });

  test('isModified tells whether the request changed the data', async () => {
    const jar = new CookieJar();
    await jar.get(px, '/set?k=user&v=carol');
    assert.deepEqual(json(await jar.get(px, '/modified')), { first: false, after: true });
  });

  test('regenerate: a new id, only the listed keys kept, the old id gone everywhere', async () => {
    const jar = new CookieJar();
    await jar.get(px, '/set?k=user&v=dave');
    await jar.get(px, '/set?k=cart&v=3');
    const old = jar.id;
    await waitFor(() => my.sessions.has(old), 'Y to hold the session');
    const r = json<{ before: string; after: string; data: unknown }>(await jar.get(py, '/regenerate'));
    assert.equal(r.before, old);
    assert.notEqual(r.after, old);
    assert.deepEqual(r.data, { user: 'dave' });
    assert.equal(jar.id, r.after, 'the new id was sent');
    await waitFor(() => !mx.sessions.has(old) && mx.sessions.has(r.after), 'X to rename it');
    assert.deepEqual(json(await jar.get(px, '/data')), { data: { user: 'dave' } });
    // The old cookie no longer finds anything.
    assert.deepEqual(json(await get(px, '/get?k=user', `JSESSIONID=${old}.x`)), { value: null });
  });

  test('destroy ends the session on every node; request.session becomes null', async () => {
    const jar = new CookieJar();
    const { id } = json<{ id: string }>(await jar.get(px, '/set?k=user&v=erin'));
    await waitFor(() => my.sessions.has(id), 'Y to hold the session');
    const res = await jar.get(py, '/destroy');
    assert.deepEqual(json(res), { session: null });
    await waitFor(() => !mx.sessions.has(id) && !my.sessions.has(id), 'both nodes to drop it');
    assert.deepEqual(json(await jar.get(px, '/get?k=user')), { value: null });
  });

  test('an id the cluster does not hold is never adopted', async () => {
    const forged = 'ABCDEF0123456789ABCDEF0123456789';
    const res = await get(px, '/set?k=user&v=mallory', `JSESSIONID=${forged}.x`);
    const { id } = json<{ id: string }>(res);
    assert.notEqual(id, forged);
    assert.ok(!mx.sessions.has(forged) && !my.sessions.has(forged));
  });

  test('503 with Retry-After until the instance has started', async () => {
    const idle = createSessions({ channel: { name: 'idle', receiver: { port: 0 } } }, { logger: silentLogger });
    const { app, port } = await server(idle);
    try {
      const res = await get(port, '/set?k=user&v=early');
      assert.equal(res.status, 503);
      assert.equal(res.headers['retry-after'], '1');
      assert.deepEqual(res.setCookie, []);
    } finally {
      await app.close();
    }
  });

  test('failover: after X stops, Y serves its sessions', async () => {
    const jar = new CookieJar();
    const { id } = json<{ id: string }>(await jar.get(px, '/set?k=user&v=frank'));
    await jar.get(px, '/inc');
    await waitFor(() => my.sessions.get(id)?.getAttribute('n') === 1, 'Y to hold the change');
    await fx.close();
    await pair.x.stop();
    const res = await jar.get(py, '/inc');
    assert.deepEqual(json(res), { n: 2 });
    assert.equal(routeOf(jar.cookie!), 'y');
    assert.deepEqual(json(await jar.get(py, '/get?k=user')), { value: 'frank' });
  });
});
