/**
 * The express-session store contract, over two nodes, with express-session and Express
 * themselves: a login on one node is read on the other; only changed keys replicate; a get on a
 * node takes the session over from its owner (no lost write without sticky balancing); destroy,
 * touch, all/length/clear and expiry act on every node; ids are express-session's, checked, and
 * an id a client presents that the cluster does not hold never becomes a session.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import session from 'express-session';
import { ClowderStore } from '../../../src/http/express-session-store.js';
import type { DeltaManager } from '../../../src/index.js';
import { createSessions, silentLogger } from '../../../src/index.js';
import { CookieJar, closeClient, get, type HttpResponse, throwFailures } from '../../helpers/http.js';
import { isolatedMulticast, waitFor } from '../../helpers/wait.js';
import { close, listen, type Pair, startPair } from './pair.js';

declare module 'express-session' {
  interface SessionData {
    user: string;
    n: number;
    prefs: { theme: string };
  }
}

const SECRET = 'a test secret that is long enough to sign cookies';
const NAME = 'connect.sid';

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

/**
 * express-session's `req.session`. This test program compiles clowder's sources too, whose own
 * `req.session` typing (for its middleware) then shadows express-session's; an application that
 * imports clowder/express-session sees only express-session's (see the pack test).
 */
interface TestData {
  user?: string;
  n?: number;
  prefs?: { theme: string };
  [key: string]: unknown;
}
function es(req: express.Request): session.Session & TestData {
  return req.session as unknown as session.Session & TestData;
}

function app(store: ClowderStore): express.Express {
  const a = express();
  a.use(session({ store, secret: SECRET, resave: false, saveUninitialized: false, name: NAME }));
  // passport's login: regenerate (fixation defence), then write and save.
  a.get('/login', (req, res, next) => {
    es(req).regenerate((err) => {
      if (err) return next(err);
      es(req).user = String(req.query.user);
      es(req).prefs = { theme: 'dark' };
      es(req).save((e) => (e ? next(e) : res.json({ id: req.sessionID })));
    });
  });
  a.get('/me', (req, res) => {
    res.json({ id: req.sessionID, user: es(req).user ?? null, n: es(req).n ?? 0, prefs: es(req).prefs });
  });
  a.get('/inc', (req, res) => {
    es(req).n = (es(req).n ?? 0) + 1;
    res.json({ n: es(req).n });
  });
  a.get('/hold', async (req, res) => {
    es(req).n = (es(req).n ?? 0) + 1;
    await gate?.promise;
    res.json({ n: es(req).n });
  });
  a.get('/reload', (req, res, next) => {
    es(req).reload((e) => (e ? next(e) : res.json({ user: es(req).user })));
  });
  a.get('/theme', (req, res) => {
    es(req).prefs!.theme = String(req.query.theme); // in place, in a nested object
    res.json({ ok: true });
  });
  a.get('/short', (req, res) => {
    es(req).cookie.maxAge = 1000;
    es(req).user = 'short-lived';
    res.json({ id: req.sessionID });
  });
  a.get('/extend', (req, res) => {
    es(req).cookie.maxAge = 120_000; // a cookie change only: express-session touches, it does not save
    res.json({ id: req.sessionID });
  });
  a.get('/logout', (req, res, next) => {
    es(req).destroy((err) => (err ? next(err) : res.json({ ok: true })));
  });
  return a;
}

function json<T = Record<string, unknown>>(res: HttpResponse): T {
  assert.equal(res.status, 200, res.body);
  return JSON.parse(res.body) as T;
}

/** express-session's id from its signed cookie `s:<id>.<signature>`. */
function sidOf(jar: CookieJar): string {
  const value = decodeURIComponent(jar.cookie!.slice(NAME.length + 1));
  return value.slice(2, value.lastIndexOf('.'));
}

/** A cookie express-session accepts (signed with the secret) for any id. */
function signedCookie(id: string): string {
  const sig = createHmac('sha256', SECRET).update(id).digest('base64').replace(/=+$/, '');
  return `${NAME}=${encodeURIComponent(`s:${id}.${sig}`)}`;
}

function call<T>(fn: (cb: (err: unknown, v?: T | null) => void) => void): Promise<T | null | undefined> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

describe('clowder/express-session: a Store over two nodes', () => {
  let pair: Pair;
  let storeX: ClowderStore;
  let storeY: ClowderStore;
  let sx: Server | undefined;
  let sy: Server | undefined;
  let px: number;
  let py: number;
  let mx: DeltaManager;
  let my: DeltaManager;

  before(async () => {
    pair = await startPair({ processExpiresFrequency: 1 });
    storeX = new ClowderStore(pair.x);
    storeY = new ClowderStore(pair.y.manager);
    mx = pair.x.manager;
    my = pair.y.manager;
    sx = createServer(app(storeX));
    sy = createServer(app(storeY));
    px = await listen(sx);
    py = await listen(sy);
  });
  after(async () => {
    storeX?.close();
    storeY?.close();
    const closed = await Promise.allSettled([close(sx), close(sy)]);
    await pair?.stop();
    closeClient();
    throwFailures(closed, 'closing the servers');
  });

  test('a login on one node is read on the other, under express-session’s own id', async () => {
    const jar = new CookieJar(NAME);
    const login = json<{ id: string }>(await jar.get(px, '/login?user=alice'));
    assert.match(login.id, /^[A-Za-z0-9_-]{32}$/, 'uid-safe: 24 bytes, base64url');
    assert.equal(sidOf(jar), login.id);
    await waitFor(() => my.sessions.has(login.id), 'Y to hold the session');
    const me = json(await jar.get(py, '/me'));
    assert.deepEqual(me, { id: login.id, user: 'alice', n: 0, prefs: { theme: 'dark' } });
    // Changed in place on Y, read on X.
    await jar.get(py, '/theme?theme=light');
    assert.deepEqual(json(await jar.get(px, '/me')).prefs, { theme: 'light' });
  });

  test('only the changed top-level keys replicate', async () => {
    const jar = new CookieJar(NAME);
    const { id } = json<{ id: string }>(await jar.get(px, '/login?user=bob'));
    await waitFor(() => my.sessions.get(id)?.hasAttribute('user'), 'Y to get the login');
    const seen: string[] = [];
    const onChange = (s: { id: string }, name: string, _v: unknown, replicated: boolean) => {
      if (s.id === id && replicated) seen.push(name);
    };
    my.on('attributeReplaced', onChange);
    my.on('attributeAdded', onChange);
    try {
      await jar.get(px, '/inc');
      await waitFor(() => seen.includes('n'), 'the change of n on Y');
      await jar.get(px, '/inc');
      await waitFor(() => seen.filter((x) => x === 'n').length === 2, 'the second change of n on Y');
      assert.deepEqual(seen, ['n', 'n'], 'user, prefs and cookie did not travel again');
    } finally {
      my.off('attributeReplaced', onChange);
      my.off('attributeAdded', onChange);
    }
  });

  test('a get takes the session over from the node that owns it: alternating writes lose nothing', async () => {
    const jar = new CookieJar(NAME);
    const { id } = json<{ id: string }>(await jar.get(px, '/login?user=carol'));
    const movesBefore = (my.stats().ownershipMoves as number) + (mx.stats().ownershipMoves as number);
    for (let i = 1; i <= 20; i++) {
      const res = json<{ n: number }>(await jar.get(i % 2 === 0 ? px : py, '/inc'));
      assert.equal(res.n, i, `increment ${i}`);
    }
    const moves = (my.stats().ownershipMoves as number) + (mx.stats().ownershipMoves as number) - movesBefore;
    assert.ok(moves >= 19, `every alternate request took the session over (${moves} moves)`);
    assert.equal(my.sessions.get(id)?.ownerId, mx.localId, 'X served the last request: it owns the session');
    assert.equal(my.stats().ownershipTimeouts, 0);
    assert.equal(mx.stats().ownershipTimeouts, 0);
  });

  test('the get holds the session until the request’s set: the other node waits for it', async () => {
    const jar = new CookieJar(NAME);
    const { id } = json<{ id: string }>(await jar.get(px, '/login?user=gina'));
    const g = newGate();
    const onX = jar.get(px, '/hold'); // got the session, n = 1, waits at the gate before its set
    await waitFor(() => mx.sessions.get(id)?.active === 1, 'the request on X to hold the session');
    const onY = get(py, '/inc', jar.cookie);
    await waitFor(() => mx.sessions.get(id)?.waiters !== undefined, 'Y to ask X for the session');
    g.open();
    assert.deepEqual(json(await onX), { n: 1 });
    assert.deepEqual(json(await onY), { n: 2 }, 'Y read the session after X’s set, with its change');
    gate = undefined;
  });

  test('reload() reads the session again without holding it twice: the request’s end releases it', async () => {
    const jar = new CookieJar(NAME);
    const { id } = json<{ id: string }>(await jar.get(px, '/login?user=hank'));
    assert.deepEqual(json(await jar.get(px, '/reload')), { user: 'hank' });
    assert.equal(mx.sessions.get(id)?.active, 0, 'no request holds it any more');
    assert.deepEqual(json(await jar.get(py, '/inc')), { n: 1 });
    assert.equal(my.stats().ownershipTimeouts, 0, 'X handed it over at once');
  });

  test('destroy ends the session on every node', async () => {
    const jar = new CookieJar(NAME);
    const { id } = json<{ id: string }>(await jar.get(px, '/login?user=dave'));
    await waitFor(() => my.sessions.has(id), 'Y to hold the session');
    json(await jar.get(py, '/logout'));
    await waitFor(() => !mx.sessions.has(id) && !my.sessions.has(id), 'both nodes to drop it');
    assert.equal(json(await jar.get(px, '/me')).user, null);
    assert.equal(await call<unknown>((cb) => storeX.get(id, cb)), null);
  });

  test('touch: a cookie-only change (no save) reaches the other node as the idle timeout', async () => {
    const jar = new CookieJar(NAME);
    const { id } = json<{ id: string }>(await jar.get(px, '/login?user=erin'));
    await waitFor(() => my.sessions.has(id), 'Y to hold the session');
    assert.equal(my.sessions.get(id)!.maxInactiveInterval, mx.config.maxInactiveInterval, 'no maxAge: the default');
    json(await jar.get(px, '/extend'));
    await waitFor(() => my.sessions.get(id)?.maxInactiveInterval === 120, 'Y to get maxAge 120 s');
    const sess = await call<session.SessionData>((cb) => storeY.get(id, cb));
    // express-session's `maxAge = 120000` sets expires = now + 120000 and then originalMaxAge =
    // expires − now, read again: a millisecond or more may pass between the two (a loaded machine).
    const original = sess?.cookie.originalMaxAge ?? 0;
    assert.ok(original > 119_000 && original <= 120_000, `originalMaxAge ${original}: the 120 s the app set`);
    await new Promise<void>((resolve) => storeY.touch(id, sess!, () => resolve())); // releases that get's hold
  });

  test('all, length and clear see and end the sessions of every node', async () => {
    await new Promise<void>((resolve, reject) => storeX.clear((err) => (err ? reject(err) : resolve())));
    await waitFor(() => my.sessions.size === 0, 'Y to drop every session');
    const ids: string[] = [];
    for (const [i, port] of [px, py, px].entries()) {
      const jar = new CookieJar(NAME);
      ids.push(json<{ id: string }>(await jar.get(port, `/login?user=u${i}`)).id);
    }
    await waitFor(async () => (await call<number>((cb) => storeY.length(cb))) === 3, 'Y to count 3 sessions');
    assert.equal(await call<number>((cb) => storeX.length(cb)), 3);
    const all = (await call<Record<string, session.SessionData>>((cb) => storeY.all(cb)))!;
    assert.deepEqual(Object.keys(all).sort(), [...ids].sort());
    assert.deepEqual(
      ids.map((id) => all[id]!.user),
      ['u0', 'u1', 'u2'],
    );
    assert.equal(all[ids[0]!]!.cookie.originalMaxAge, null);
    await new Promise<void>((resolve, reject) => storeY.clear((err) => (err ? reject(err) : resolve())));
    await waitFor(() => mx.sessions.size === 0, 'X to drop every session');
    assert.equal(await call<number>((cb) => storeX.length(cb)), 0);
  });

  test('expiry: cookie.maxAge becomes the idle timeout on every node', async () => {
    const jar = new CookieJar(NAME);
    const { id } = json<{ id: string }>(await jar.get(px, '/short'));
    await waitFor(() => my.sessions.get(id)?.maxInactiveInterval === 1, 'Y to hold it with a 1 s timeout');
    await waitFor(() => !mx.sessions.has(id) && !my.sessions.has(id), 'both nodes to expire it', {
      timeoutMs: 15_000,
      intervalMs: 50,
    });
    assert.equal(json(await jar.get(py, '/me')).user, null);
  });

  test('ids: malformed ones are refused and counted; a presented id the cluster does not hold is never adopted', async () => {
    const before = storeX.stats();
    assert.equal(await call<unknown>((cb) => storeX.get('../../etc', cb)), null);
    const err = await call((cb) => storeX.set('short', { cookie: { originalMaxAge: null } } as never, cb)).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.equal((err as { code?: string })?.code, 'ERR_CLOWDER_SESSION_ID');
    assert.equal(storeX.stats().malformedIds, before.malformedIds + 2);

    // A client presents a well-formed id, correctly signed, that the cluster does not hold.
    const forged = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const res = await get(px, '/inc', signedCookie(forged));
    assert.equal(res.status, 200);
    const jar = new CookieJar(NAME);
    jar.update(res);
    assert.notEqual(sidOf(jar), forged, 'express-session issued a new id');
    assert.ok(!mx.sessions.has(forged) && !my.sessions.has(forged));
    // Were anything to try to store it now, the store refuses: that id was presented and missed.
    const refused = await call((cb) =>
      storeX.set(forged, { cookie: { originalMaxAge: null }, n: 1 } as never, cb),
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.equal((refused as { code?: string })?.code, 'ERR_CLOWDER_SESSION_ID');
    assert.equal(storeX.stats().refusedIds, before.refusedIds + 1);
    assert.ok(!mx.sessions.has(forged));
  });

  test('attributes that are not JSON this store wrote are left out of get and counted, not thrown', async () => {
    const jar = new CookieJar(NAME);
    const { id } = json<{ id: string }>(await jar.get(px, '/login?user=ivy'));
    const s = mx.sessions.get(id)!;
    s.setAttribute('raw', { not: 'json text' }); // e.g. written by another adapter on the same manager
    s.setAttribute('broken', '{"unterminated');
    s.setAttribute('__proto__', '{"polluted":true}');
    const before = storeX.stats().unreadable;
    const data = (await call<session.SessionData>((cb) => storeX.get(id, cb)))!;
    await new Promise<void>((resolve) => storeX.touch(id, data, () => resolve()));
    assert.equal(data.user, 'ivy');
    assert.ok(!('raw' in data) && !('broken' in data));
    assert.equal(Object.getPrototypeOf(data), Object.prototype);
    assert.equal(({} as { polluted?: boolean }).polluted, undefined);
    assert.equal(storeX.stats().unreadable, before + 3);
  });

  test('a write for a session destroyed meanwhile does not bring it back', async () => {
    const jar = new CookieJar(NAME);
    const { id } = json<{ id: string }>(await jar.get(px, '/login?user=frank'));
    const sess = await call<session.SessionData>((cb) => storeX.get(id, cb)); // a request holds it on X
    await new Promise<void>((resolve) => storeY.destroy(id, () => resolve())); // ended on Y meanwhile
    await waitFor(() => !mx.sessions.has(id), 'X to drop it');
    const dropped = storeX.stats().droppedWrites;
    await call((cb) => storeX.set(id, { ...sess!, user: 'revived' } as never, cb));
    assert.ok(!mx.sessions.has(id) && !my.sessions.has(id), 'still gone');
    assert.equal(storeX.stats().droppedWrites, dropped + 1);
  });

  test('before its cluster started, the store waits for it (one listener however many wait)', async () => {
    const { port, domain } = isolatedMulticast();
    const alone = createSessions(
      {
        channel: {
          name: 'z',
          domain,
          receiver: { port: 0 },
          membership: { type: 'multicast', port, frequencyMs: 100 },
        },
      },
      { logger: silentLogger },
    );
    const store = new ClowderStore(alone);
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      let answered = 0;
      const lengths = Array.from({ length: 20 }, () =>
        call<number>((cb) => store.length(cb)).then((n) => {
          answered++;
          return n;
        }),
      );
      assert.equal(answered, 0);
      assert.equal(alone.manager.listenerCount('ready'), 1);
      await alone.start();
      assert.deepEqual(await Promise.all(lengths), new Array(20).fill(0));
      assert.deepEqual(warnings, []);
    } finally {
      process.off('warning', onWarning);
      store.close();
      await alone.stop();
    }
  });
});
