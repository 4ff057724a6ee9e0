/**
 * Library mode: `createSessions()` in front of the user's own server — `.handler(app)` on a plain
 * http.createServer, and `.middleware()` in a hand-written connect-style chain — replicating
 * between two such instances; regenerate, destroy, save; read-only paths; 503 until start() completed.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createSessions, type DeltaManager, type SessionCluster, silentLogger } from '../../../src/index.js';
import {
  closeClient,
  get,
  type HttpResponse,
  idOf,
  type SessionRequest,
  sessionCookie,
  sessionCookieLine,
  throwFailures,
} from '../../helpers/http.js';
import { isolatedMulticast, waitFor } from '../../helpers/wait.js';
import { json } from './apps.js';

type Next = (err?: unknown) => void;
type Handler = (req: IncomingMessage, res: ServerResponse, next: Next) => void;

/** A minimal connect: runs handlers in order; an error or the end of the chain answers 500/404. */
function connect(...handlers: Handler[]): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    let i = 0;
    const next: Next = (err) => {
      if (err !== undefined) {
        res.statusCode = 500;
        res.end(String(err));
        return;
      }
      const h = handlers[i++];
      if (h === undefined) {
        res.statusCode = 404;
        res.end('not found');
        return;
      }
      try {
        h(req, res, next);
      } catch (e) {
        next(e);
      }
    };
    next();
  };
}

/** Express-style mounting: req.url loses the prefix, req.originalUrl keeps the whole URL. */
function stripMount(prefix: string): Handler {
  return (req, _res, next) => {
    const url = req.url ?? '/';
    if (url.startsWith(`${prefix}/`)) {
      (req as IncomingMessage & { originalUrl?: string }).originalUrl = url;
      req.url = url.slice(prefix.length);
    }
    next();
  };
}

function attrsOf(req: SessionRequest): Record<string, unknown> | null {
  const s = req.getSession(false);
  if (s === undefined) return null;
  return Object.fromEntries(s.getAttributeNames().map((n) => [n, s.getAttribute(n)]));
}

/** The application, the same behind both adapters; `other` is the other instance's manager. */
function app(other: () => DeltaManager) {
  return (req0: IncomingMessage, res: ServerResponse) => {
    const req = req0 as SessionRequest;
    const url = new URL(req.url ?? '/', 'http://x');
    const q = url.searchParams;
    switch (url.pathname) {
      case '/set':
        req.session[q.get('name') ?? 'k'] = q.get('value');
        return json(res, 200, { id: req.session.id });
      case '/attrs':
      case '/ro/attrs':
        return json(res, 200, { id: req.getSession(false)?.id ?? null, attrs: attrsOf(req) });
      case '/ro/set':
      case '/w/set':
        // Throws on a read-only path: the adapter's error handling answers 500.
        req.session[q.get('name') ?? 'k'] = q.get('value');
        return json(res, 200, { id: req.session.id });
      case '/ro/session':
        // Reading req.session (and an attribute) on a request without a session creates none.
        return json(res, 200, {
          session: req.session === undefined ? 'undefined' : 'present',
          user: req.session.user ?? null,
        });
      case '/end-twice':
        req.session.twice = 1;
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('first');
        res.end('second');
        return;
      case '/regenerate':
      case '/change-id': {
        const oldId = req.session.id;
        const cb = (err?: Error | null) => {
          if (err) return json(res, 500, { err: String(err) });
          json(res, 200, { oldId, newId: req.session.id, attrs: attrsOf(req) });
        };
        if (url.pathname === '/regenerate') req.session.regenerate(cb);
        else req.session.changeId(cb);
        return;
      }
      case '/destroy': {
        const id = req.session.id;
        req.session.destroy((err) => {
          if (err) return json(res, 500, { err: String(err) });
          json(res, 200, { id, after: req.getSession(false) === undefined });
        });
        return;
      }
      case '/save': {
        const s = req.session;
        s.saved = q.get('value');
        const id = s.id;
        s.save().then(async () => {
          // save() sent the change now: the other node has it before this response ends.
          const replicated = await waitFor(
            () => other().sessions.get(id)?.getAttribute('saved') === q.get('value'),
            'the other node to get the saved value',
            { timeoutMs: 8000 }, // under the client's 10 s: a miss answers replicated=false
          ).then(
            () => true,
            () => false,
          );
          json(res, 200, { id, replicated });
        });
        return;
      }
      default:
        return json(res, 404, { path: url.pathname });
    }
  };
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function close(server: Server | undefined): Promise<void> {
  if (server === undefined || !server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function body<T = Record<string, unknown>>(res: HttpResponse): T {
  assert.equal(res.status, 200, res.body);
  return JSON.parse(res.body) as T;
}

describe('library mode: createSessions() with handler() and middleware()', () => {
  const { port: mport, domain } = isolatedMulticast();
  const channel = (name: string) => ({
    name,
    domain,
    receiver: { port: 0 },
    membership: { type: 'multicast' as const, port: mport, frequencyMs: 100, dropTimeMs: 1000 },
  });
  let x: SessionCluster;
  let y: SessionCluster;
  let serverX: Server | undefined;
  let serverY: Server | undefined;
  let px: number;
  let py: number;
  let notReady: HttpResponse[] = [];

  before(async () => {
    // /mnt/w/… is read-only only as a whole path: behind a mount that strips /mnt (as Express's
    // app.use('/mnt', …) does) the middleware must test req.originalUrl.
    const sessions = { readOnlyFilter: '^/ro/|^/mnt/w/' };
    x = createSessions({ channel: channel('x'), sessions }, { logger: silentLogger });
    y = createSessions({ channel: channel('y'), sessions }, { logger: silentLogger });
    // X: node:http listener; Y: middleware in a connect-style chain. Both listen before start().
    serverX = createServer(x.handler(app(() => y.manager)));
    serverY = createServer(
      connect(
        stripMount('/mnt'),
        y.middleware(),
        app(() => x.manager),
      ),
    );
    px = await listen(serverX);
    py = await listen(serverY);
    notReady = [await get(px, '/set?name=a&value=1'), await get(py, '/set?name=a&value=1')];
    await Promise.all([x.start(), y.start()]);
    await waitFor(
      () => x.channel.members().length === 1 && y.channel.members().length === 1,
      'the two instances to see each other',
    );
  });
  after(async () => {
    const servers = await Promise.allSettled([close(serverX), close(serverY)]);
    const nodes = await Promise.allSettled([x?.stop(), y?.stop()]);
    closeClient();
    throwFailures([...servers, ...nodes], 'cleaning up');
  });

  test('503 with Retry-After before start() completed, and no session', () => {
    for (const res of notReady) {
      assert.equal(res.status, 503);
      assert.equal(res.headers['retry-after'], '1');
      assert.deepEqual(res.setCookie, []);
    }
  });

  test('req.session works behind both adapters and replicates between the instances', async () => {
    const r1 = await get(px, '/set?name=color&value=red');
    const cookie = sessionCookie(r1)!;
    assert.match(sessionCookieLine(r1)!, /^JSESSIONID=[0-9A-F]{32}\.x; Path=\/; HttpOnly; SameSite=Lax$/);
    const id = idOf(cookie);
    assert.equal(body(r1).id, id);
    await waitFor(() => y.manager.sessions.get(id)?.getAttribute('color') === 'red', 'Y to receive it');
    const onY = await get(py, '/attrs', cookie);
    assert.deepEqual(body(onY), { id, attrs: { color: 'red' } });
    assert.equal(idOf(sessionCookie(onY)!), id, 'Y re-binds the route');
    assert.match(sessionCookie(onY)!, /\.y$/);
    // And back: written through the middleware, read through the handler.
    await get(py, '/set?name=size&value=L', cookie);
    await waitFor(() => x.manager.sessions.get(id)?.getAttribute('size') === 'L', 'X to receive the change');
    assert.deepEqual(body(await get(px, '/attrs', cookie)).attrs, { color: 'red', size: 'L' });
    // The counters a library user reads (stats(): what node.stats() has for one application).
    const st = y.stats();
    assert.equal(st.ready, true);
    assert.equal(st.channel.membership.members, 1, 'x in view');
    assert.ok(st.channel.messages.received > 0 && st.channel.messages.sent > 0);
    assert.equal(st.sessions.manager, 'delta');
    assert.equal(st.sessions.activeSessions, y.manager.sessions.size);
    assert.ok(st.sessions.activeSessions >= 1);
  });

  for (const [where, port, otherManager] of [
    ['handler', () => px, () => y.manager],
    ['middleware', () => py, () => x.manager],
  ] as const) {
    test(`regenerate(cb) (${where}): new id, empty session (express-session); the old id no longer works on the other instance`, async () => {
      const created = await get(port(), '/set?name=user&value=alice');
      const oldCookie = sessionCookie(created)!;
      const oldId = idOf(oldCookie);
      const other = otherManager();
      await waitFor(() => other.sessions.has(oldId), 'the other instance to receive the session');
      const res = await get(port(), '/regenerate', oldCookie);
      const out = body<{ oldId: string; newId: string; attrs: Record<string, unknown> }>(res);
      assert.equal(out.oldId, oldId);
      assert.match(out.newId, /^[0-9A-F]{32}$/);
      assert.notEqual(out.newId, oldId);
      assert.deepEqual(out.attrs, {}, 'the data is gone (session fixation defence)');
      const newCookie = sessionCookie(res)!;
      assert.equal(idOf(newCookie), out.newId, 'the cookie carries the new id');
      assert.equal(res.setCookie.filter((l) => l.startsWith('JSESSIONID=')).length, 1);
      await waitFor(
        () => other.sessions.has(out.newId) && !other.sessions.has(oldId),
        'the other instance to rename the session',
      );
      const otherPort = port() === px ? py : px;
      assert.deepEqual(body(await get(otherPort, '/attrs', oldCookie)), { id: null, attrs: null });
      assert.deepEqual(body(await get(otherPort, '/attrs', newCookie)).attrs, {});
      assert.deepEqual(body(await get(port(), '/attrs', oldCookie)), { id: null, attrs: null });
    });

    test(`changeId(cb) (${where}): new id, same data; the old id no longer works on the other instance`, async () => {
      const created = await get(port(), '/set?name=user&value=alice');
      const oldCookie = sessionCookie(created)!;
      const oldId = idOf(oldCookie);
      const other = otherManager();
      await waitFor(() => other.sessions.has(oldId), 'the other instance to receive the session');
      const res = await get(port(), '/change-id', oldCookie);
      const out = body<{ oldId: string; newId: string; attrs: Record<string, unknown> }>(res);
      assert.equal(out.oldId, oldId);
      assert.match(out.newId, /^[0-9A-F]{32}$/);
      assert.notEqual(out.newId, oldId);
      assert.deepEqual(out.attrs, { user: 'alice' });
      const newCookie = sessionCookie(res)!;
      assert.equal(idOf(newCookie), out.newId, 'the cookie carries the new id');
      assert.equal(res.setCookie.filter((l) => l.startsWith('JSESSIONID=')).length, 1);
      await waitFor(
        () => other.sessions.has(out.newId) && !other.sessions.has(oldId),
        'the other instance to rename the session',
      );
      const otherPort = port() === px ? py : px;
      assert.deepEqual(body(await get(otherPort, '/attrs', oldCookie)), { id: null, attrs: null });
      assert.deepEqual(body(await get(otherPort, '/attrs', newCookie)).attrs, { user: 'alice' });
      assert.deepEqual(body(await get(port(), '/attrs', oldCookie)), { id: null, attrs: null });
    });

    test(`destroy(cb) (${where}): no Set-Cookie (as express-session) and the session is gone on the other instance`, async () => {
      const created = await get(port(), '/set?name=user&value=bob');
      const cookie = sessionCookie(created)!;
      const id = idOf(cookie);
      const other = otherManager();
      await waitFor(() => other.sessions.has(id), 'the other instance to receive the session');
      const res = await get(port(), '/destroy', cookie);
      assert.deepEqual(body(res), { id, after: true });
      assert.deepEqual(res.setCookie, [], 'the browser keeps a cookie that names nothing any more');
      await waitFor(() => !other.sessions.has(id), 'the other instance to drop the session');
      const otherPort = port() === px ? py : px;
      assert.deepEqual(body(await get(otherPort, '/attrs', cookie)), { id: null, attrs: null });
    });

    test(`end() twice (${where}): the response the client gets is the first one, as without clowder`, async () => {
      const res = await get(port(), '/end-twice');
      assert.equal(res.status, 200);
      assert.equal(res.body, 'first');
      await waitFor(
        () =>
          otherManager()
            .sessions.get(idOf(sessionCookie(res)!))
            ?.getAttribute('twice') === 1,
        'the change to replicate',
      );
    });

    test(`a read-only path (${where}): served from the local copy, never creates a session, refuses changes`, async () => {
      const held = x.manager.sessions.size + y.manager.sessions.size;
      const none = await get(port(), '/ro/session');
      assert.equal(x.manager.sessions.size + y.manager.sessions.size, held, 'no session was created');
      assert.deepEqual(body(none), { session: 'present', user: null });
      assert.deepEqual(none.setCookie, [], 'no session, no cookie');
      const created = await get(port(), '/set?name=r&value=1');
      const cookie = sessionCookie(created)!;
      const id = idOf(cookie);
      await waitFor(() => otherManager().sessions.has(id), 'the other instance to receive the session');
      const otherPort = port() === px ? py : px;
      // On the other instance: read at once, the cookie still names the owner (alive).
      const read = await get(otherPort, '/ro/attrs', cookie);
      assert.deepEqual(body(read), { id, attrs: { r: '1' } });
      assert.equal(sessionCookie(read), undefined);
      const refused = await get(otherPort, '/ro/set?name=r&value=2', cookie);
      assert.equal(refused.status, 500);
      if (otherPort === py) assert.match(refused.body, /cannot change session attribute "r".*readOnlyFilter/);
      for (const m of [x.manager, y.manager]) assert.equal(m.sessions.get(id)?.getAttribute('r'), '1');
    });

    if (where === 'middleware')
      test('the middleware matches readOnlyFilter against the whole path, before a mount stripped it', async () => {
        const created = await get(py, '/set?name=m&value=1');
        const cookie = sessionCookie(created)!;
        const refused = await get(py, '/mnt/w/set?name=m&value=2', cookie);
        assert.equal(refused.status, 500);
        assert.match(refused.body, /readOnlyFilter/);
        assert.equal(y.manager.sessions.get(idOf(cookie))?.getAttribute('m'), '1');
      });

    test(`save() (${where}) resolves and sends the change before the response ends`, async () => {
      const first = await get(port(), '/set?name=k&value=v');
      const cookie = sessionCookie(first)!;
      await waitFor(() => otherManager().sessions.has(idOf(cookie)), 'the other instance to receive the session');
      const out = body<{ replicated: boolean }>(await get(port(), '/save?value=s1', cookie));
      assert.equal(out.replicated, true);
    });
  }
});
