/**
 * clowder/koa over two nodes: koa-session's `ctx.session` API backed by clowder's sessions — a
 * write on one node is read on the other, alternating writes lose nothing, an accessed but empty
 * session is not stored, `ctx.session = null` destroys everywhere and clears the cookie,
 * regenerate keeps the data under a new id, maxAge sets the idle timeout on every node,
 * manuallyCommit, and failover after the first node stops.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import Koa from 'koa';
import { clowderKoa } from '../../../src/http/koa.js';
import { createSessions, type DeltaManager, type SessionCluster, silentLogger } from '../../../src/index.js';
import {
  CookieJar,
  closeClient,
  get,
  type HttpResponse,
  sessionCookieLine,
  throwFailures,
} from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';
import { close, listen, type Pair, startPair } from './pair.js';

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

function app(sessions: SessionCluster, autoCommit = true): Koa {
  const a = new Koa();
  a.use(clowderKoa(sessions, { autoCommit }));
  a.use(async (ctx) => {
    const q = ctx.query as Record<string, string>;
    switch (ctx.path) {
      case '/set':
        ctx.session![q.k!] = q.v;
        ctx.body = { id: ctx.session!.externalKey, isNew: ctx.session!.isNew };
        return;
      case '/get':
        ctx.body = { value: ctx.session![q.k!] ?? null, isNew: ctx.session!.isNew, populated: ctx.session!.populated };
        return;
      case '/inc':
        ctx.session!.n = ((ctx.session!.n as number | undefined) ?? 0) + 1;
        ctx.body = { n: ctx.session!.n };
        return;
      case '/hold':
        ctx.session!.n = ((ctx.session!.n as number | undefined) ?? 0) + 1;
        await gate?.promise;
        ctx.body = { n: ctx.session!.n };
        return;
      case '/null':
        ctx.session = null;
        ctx.body = { session: ctx.session };
        return;
      case '/regenerate': {
        const before = ctx.session!.externalKey;
        await ctx.session!.regenerate();
        ctx.body = { before, after: ctx.session!.externalKey, data: ctx.session!.toJSON() };
        return;
      }
      case '/max-age':
        ctx.session!.maxAge = Number(q.ms);
        ctx.body = { maxAge: ctx.session!.maxAge };
        return;
      case '/replace':
        ctx.session = { only: 'this' };
        ctx.body = { data: ctx.session!.toJSON() };
        return;
      case '/manual':
        ctx.session!.manual = q.v;
        await ctx.session!.manuallyCommit();
        ctx.body = { id: ctx.session!.externalKey };
        return;
      default:
        ctx.status = 404;
    }
  });
  return a;
}

function json<T = Record<string, unknown>>(res: HttpResponse): T {
  assert.equal(res.status, 200, res.body);
  return JSON.parse(res.body) as T;
}

describe('clowder/koa: ctx.session over two nodes', () => {
  let pair: Pair;
  let sx: Server | undefined;
  let sy: Server | undefined;
  let sm: Server | undefined;
  let px: number;
  let py: number;
  let pm: number;
  let mx: DeltaManager;
  let my: DeltaManager;

  before(async () => {
    pair = await startPair();
    mx = pair.x.manager;
    my = pair.y.manager;
    sx = createServer(app(pair.x).callback());
    sy = createServer(app(pair.y).callback());
    sm = createServer(app(pair.y, false).callback());
    px = await listen(sx);
    py = await listen(sy);
    pm = await listen(sm);
  });
  after(async () => {
    const closed = await Promise.allSettled([close(sx), close(sy), close(sm)]);
    await pair?.stop();
    closeClient();
    throwFailures(closed, 'closing the servers');
  });

  test('a write on one node is read on the other', async () => {
    const jar = new CookieJar();
    const first = json<{ id: string; isNew: boolean }>(await jar.get(px, '/set?k=user&v=alice'));
    assert.equal(first.isNew, true);
    assert.equal(jar.id, first.id);
    assert.deepEqual(json(await jar.get(py, '/get?k=user')), { value: 'alice', isNew: false, populated: true });
    assert.match(jar.cookie!, /\.y$/, 'Y re-issued the cookie with its route');
  });

  test('a session accessed but left empty is not stored; no cookie', async () => {
    const before = mx.sessions.size;
    const res = await get(px, '/get?k=user');
    assert.deepEqual(json(res), { value: null, isNew: true, populated: false });
    assert.deepEqual(res.setCookie, []);
    assert.equal(mx.sessions.size, before);
  });

  test('alternating writes on the two nodes lose nothing', async () => {
    const jar = new CookieJar();
    await jar.get(px, '/set?k=user&v=bob');
    for (let i = 1; i <= 20; i++) assert.equal(json<{ n: number }>(await jar.get(i % 2 ? py : px, '/inc')).n, i);
  });

  test('a request on the other node waits until the owner’s request in progress is done', async () => {
    const jar = new CookieJar();
    await jar.get(px, '/set?k=user&v=owner');
    const id = jar.id;
    const g = newGate();
    const onX = jar.get(px, '/hold'); // n = 1, then waits at the gate: X owns the session meanwhile
    await waitFor(() => mx.sessions.get(id)?.active === 1, 'the request on X to be in progress');
    const onY = get(py, '/inc', jar.cookie);
    await waitFor(() => mx.sessions.get(id)?.waiters !== undefined, 'Y to ask X for the session');
    g.open();
    assert.deepEqual(json(await onX), { n: 1 });
    assert.deepEqual(json(await onY), { n: 2 }, 'Y ran after X handed over, with its change');
    gate = undefined;
  });

  test('ctx.session = null destroys it on every node and clears the cookie', async () => {
    const jar = new CookieJar();
    const { id } = json<{ id: string }>(await jar.get(px, '/set?k=user&v=carol'));
    await waitFor(() => my.sessions.has(id), 'Y to hold the session');
    const res = await jar.get(py, '/null');
    assert.deepEqual(json(res), { session: null });
    assert.match(sessionCookieLine(res)!, /^JSESSIONID=; .*Max-Age=0/);
    assert.equal(jar.cookie, undefined);
    await waitFor(() => !mx.sessions.has(id) && !my.sessions.has(id), 'both nodes to drop it');
  });

  test('regenerate keeps the data under a new id; the old id ends everywhere', async () => {
    const jar = new CookieJar();
    const { id: old } = json<{ id: string }>(await jar.get(px, '/set?k=user&v=dave'));
    const r = json<{ before: string; after: string; data: unknown }>(await jar.get(px, '/regenerate'));
    assert.equal(r.before, old);
    assert.notEqual(r.after, old);
    assert.deepEqual(r.data, { user: 'dave' });
    assert.equal(jar.id, r.after);
    await waitFor(() => !my.sessions.has(old) && my.sessions.has(r.after), 'Y to rename it');
    assert.deepEqual(json(await jar.get(py, '/get?k=user')), { value: 'dave', isNew: false, populated: true });
  });

  test('maxAge: a persistent cookie and the idle timeout on every node', async () => {
    const jar = new CookieJar();
    await jar.get(px, '/set?k=user&v=erin');
    const res = await jar.get(px, '/max-age?ms=120000');
    assert.deepEqual(json(res), { maxAge: 120_000 });
    assert.match(sessionCookieLine(res)!, /Max-Age=120/);
    await waitFor(() => my.sessions.get(jar.id)?.maxInactiveInterval === 120, 'Y to get the timeout');
  });

  test('ctx.session = {…} replaces the data and keeps the id', async () => {
    const jar = new CookieJar();
    const { id } = json<{ id: string }>(await jar.get(px, '/set?k=user&v=frank'));
    assert.deepEqual(json(await jar.get(px, '/replace')), { data: { only: 'this' } });
    assert.equal(jar.id, id);
    await waitFor(() => my.sessions.get(id)?.attributeNames().join() === 'only', 'Y to get the replacement');
  });

  test('autoCommit false: manuallyCommit replicates', async () => {
    const jar = new CookieJar();
    const { id } = json<{ id: string }>(await jar.get(pm, '/manual?v=1'));
    assert.equal(jar.id, id, 'the commit set the cookie');
    await waitFor(() => mx.sessions.get(id)?.getAttribute('manual') === '1', 'X to get the change');
  });

  test('503 with Retry-After until the instance has started', async () => {
    const idle = createSessions({ channel: { name: 'idle', receiver: { port: 0 } } }, { logger: silentLogger });
    const server = createServer(app(idle).callback());
    try {
      const res = await get(await listen(server), '/set?k=user&v=early');
      assert.equal(res.status, 503);
      assert.equal(res.headers['retry-after'], '1');
      assert.deepEqual(res.setCookie, []);
    } finally {
      await close(server);
    }
  });

  test('failover: after X stops, Y serves its sessions', async () => {
    const jar = new CookieJar();
    await jar.get(px, '/inc');
    await waitFor(() => my.sessions.get(jar.id)?.getAttribute('n') === 1, 'Y to hold the change');
    await close(sx);
    await pair.x.stop();
    assert.deepEqual(json(await jar.get(py, '/inc')), { n: 2 });
    assert.match(jar.cookie!, /\.y$/);
  });
});
