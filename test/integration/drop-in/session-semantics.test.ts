/**
 * express-session semantics of `req.session` on clowder nodes (the node:http adapter; the
 * differential test covers the middleware): lazy creation, req.sessionID, regenerate vs changeId,
 * req.session.cookie and its replication (failover, state transfer), node-wide cookie settings,
 * rolling and saveUninitialized, asynchronous callbacks, JSON/inspect, the reserved attribute.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { inspect } from 'node:util';
import type { RequestListener, SessionHandle } from '../../../src/index.js';
import {
  get,
  type HttpResponse,
  idOf,
  managerOf,
  portOf,
  type SessionRequest,
  sessionCookie,
  startNodes,
  type TestCluster,
} from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';

const RESERVED = '__clowder.cookie';

function json(res: Parameters<RequestListener>[1], body: unknown): void {
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify(body));
}

function errorOf(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** What a regenerate() after the response ended reported. */
let lateError: string | null | undefined;

const app: RequestListener = (req0, res) => {
  const req = req0 as SessionRequest & { sessionID: string };
  const url = new URL(req.url ?? '/', 'http://x');
  const q = url.searchParams;
  const s = req.session;
  switch (url.pathname) {
    case '/read':
      return json(res, { user: s.user ?? null, has: 'user' in s });
    case '/write':
      s[q.get('name') ?? 'k'] = q.get('value') ?? 'v';
      return json(res, { id: req.sessionID });
    case '/id-then-write': {
      const before = req.sessionID;
      const again = req.session.id;
      s.w = 1;
      return json(res, { before, again, after: req.sessionID, cookie: s.id });
    }
    case '/cookie': {
      const c = s.cookie;
      if (q.has('maxAge')) c.maxAge = q.get('maxAge') === 'null' ? null : Number(q.get('maxAge'));
      if (q.has('domain')) c.domain = q.get('domain')!;
      if (q.has('sameSite')) c.sameSite = q.get('sameSite')!;
      if (q.has('write')) s.w = q.get('write');
      return json(res, { cookie: c.toJSON() });
    }
    case '/regenerate':
      s.regenerate({ keep: q.get('keep') === '1' }, (err) =>
        json(res, { err: err?.message ?? null, id: req.sessionID, keys: Object.keys(req.session) }),
      );
      return;
    case '/late-regenerate':
      json(res, { ok: true });
      setImmediate(() =>
        s.regenerate((err) => {
          lateError = err?.message ?? null;
        }),
      );
      return;
    case '/show':
      return json(res, {
        json: JSON.parse(JSON.stringify(s)),
        cookie: JSON.parse(JSON.stringify(s.cookie)),
        inspect: inspect(s),
        keys: Object.keys(s),
        names: s.getAttributeNames(),
        reservedRead: s[RESERVED] ?? null,
        reservedAssign: errorOf(() => {
          s[RESERVED] = { m: 1 };
        }),
        reservedSetAttribute: errorOf(() => s.setAttribute(RESERVED, { m: 1 })),
      });
    case '/callbacks': {
      const order: string[] = [];
      const step = (name: string, call: (cb: (err?: Error | null) => void) => unknown) =>
        new Promise<void>((resolve) => {
          call(() => {
            order.push(`${name}:callback`);
            resolve();
          });
          order.push(`${name}:returned`);
        });
      const h: SessionHandle = s;
      (async () => {
        h.x = 1;
        await step('save', (cb) => h.save(cb));
        await step('reload', (cb) => h.reload(cb));
        await step('regenerate', (cb) => h.regenerate(cb));
        await step('destroy', (cb) => h.destroy(cb));
        json(res, { order });
      })();
      return;
    }
    default:
      res.statusCode = 404;
      res.end();
  }
};

function line(res: HttpResponse): string | undefined {
  return res.setCookie.find((l) => l.startsWith('JSESSIONID='));
}

describe('req.session semantics (express-session) on clowder nodes', () => {
  let cluster: TestCluster;
  let pa: number;
  let pb: number;
  before(async () => {
    cluster = await startNodes(2, {
      cluster: { insecure: true },
      apps: [
        { path: '/s', app },
        { path: '/m', app, sessions: { cookie: { maxAge: 3_600_000 } } },
        { path: '/r', app, sessions: { rolling: true, saveUninitialized: true } },
      ],
    });
    pa = portOf(cluster.node('a'));
    pb = portOf(cluster.node('b'));
  });
  after(async () => {
    await cluster?.stop();
  });

  test('200 requests that only read req.session create no session, send no cookie and replicate nothing', async () => {
    const ma = managerOf(cluster.node('a'));
    const mb = managerOf(cluster.node('b'));
    const before = [ma.sessions.size, mb.sessions.size];
    for (let i = 0; i < 200; i++) {
      const res = await get(i % 2 ? pa : pb, '/s/read');
      assert.deepEqual(JSON.parse(res.body), { user: null, has: false });
      assert.deepEqual(res.setCookie, []);
    }
    // A write (replicated) after the reads: once it is on the other node, the reads would be too.
    const w = await get(pa, '/s/write?name=user&value=u');
    const id = idOf(sessionCookie(w)!);
    await waitFor(() => mb.sessions.has(id), 'B to receive the written session');
    assert.deepEqual([ma.sessions.size, mb.sessions.size], [before[0]! + 1, before[1]! + 1]);
  });

  test('req.sessionID read before the first write is the id the session gets', async () => {
    const res = await get(pa, '/s/id-then-write');
    const out = JSON.parse(res.body) as Record<string, string>;
    assert.match(out.before!, /^[0-9A-F]{32}$/);
    assert.equal(out.again, out.before);
    assert.equal(out.after, out.before);
    assert.equal(out.cookie, out.before);
    assert.equal(idOf(sessionCookie(res)!), out.before);
  });

  test("a session's own cookie settings replicate: the node that takes over re-issues the same cookie", async () => {
    const seen: string[] = [];
    const listener = (_s: unknown, name: string) => seen.push(name);
    const ma = managerOf(cluster.node('a'));
    ma.on('attributeAdded', listener);
    const res = await get(pa, '/s/cookie?maxAge=3600000&domain=example.test&sameSite=strict&write=1');
    ma.off('attributeAdded', listener);
    assert.deepEqual(seen, ['w'], 'listeners never see the reserved attribute');
    const l = line(res)!;
    assert.match(l, /; Domain=example\.test(;|$)/);
    assert.match(l, /; SameSite=Strict(;|$)/);
    assert.match(l, /; Max-Age=3600; Expires=/);
    const cookie = sessionCookie(res)!;
    const id = idOf(cookie);
    const mb = managerOf(cluster.node('b'));
    await waitFor(() => mb.sessions.get(id)?.hasAttribute(RESERVED) === true, 'B to receive the cookie settings');
    assert.equal(mb.sessions.get(id)!.maxInactiveInterval, 3600, 'the idle timeout follows the persistent cookie');
    const onB = await get(pb, '/s/read', cookie);
    const lb = line(onB)!;
    assert.match(lb, /\.b; /, 'B re-homes the cookie');
    assert.equal(
      lb.replace(/^[^;]*;/, '').replace(/Expires=[^;]*/, ''),
      l.replace(/^[^;]*;/, '').replace(/Expires=[^;]*/, ''),
    );
    // State transfer carries them too: a node that joins now re-issues the same cookie.
    const c = await cluster.add('c');
    const onC = await get(portOf(c), '/s/read', sessionCookie(onB)!);
    assert.match(line(onC)!, /\.c; Path=\/s; Domain=example\.test; HttpOnly; SameSite=Strict; Max-Age=3600; Expires=/);
    await c.stop();
    cluster.nodes.splice(cluster.nodes.indexOf(c), 1);
  });

  test('regenerate() empties the session and resets its cookie; regenerate({ keep: true }) keeps both', async () => {
    const first = await get(pa, '/s/cookie?maxAge=3600000&domain=example.test&write=yes');
    const kept = await get(pa, '/s/regenerate?keep=1', sessionCookie(first)!);
    const k = JSON.parse(kept.body) as { id: string; keys: string[] };
    assert.deepEqual(k.keys, ['w']);
    assert.notEqual(k.id, idOf(sessionCookie(first)!));
    assert.match(line(kept)!, /; Domain=example\.test; .*Max-Age=3600;/);
    const fresh = await get(pa, '/s/regenerate', sessionCookie(kept)!);
    const f = JSON.parse(fresh.body) as { id: string; keys: string[] };
    assert.deepEqual(f.keys, []);
    assert.notEqual(f.id, k.id);
    assert.equal(line(fresh), `JSESSIONID=${f.id}.a; Path=/s; HttpOnly; SameSite=Lax`);
    const mb = managerOf(cluster.node('b'));
    await waitFor(() => mb.sessions.has(f.id) && !mb.sessions.has(k.id), 'B to drop the old session, hold the new');
    assert.deepEqual(mb.sessions.get(f.id)!.attributeNames(), []);
  });

  test('sessions.cookie.maxAge: every new cookie is persistent, and failover and regenerate keep it', async () => {
    const res = await get(pa, '/m/write?name=a&value=1');
    assert.match(line(res)!, /; Max-Age=3600; Expires=/);
    assert.equal(managerOf(cluster.node('a'), 1).sessions.get(idOf(sessionCookie(res)!))!.maxInactiveInterval, 3600);
    const onB = await get(pb, '/m/read', sessionCookie(res)!);
    assert.match(line(onB)!, /\.b; .*; Max-Age=3600; Expires=/);
    const regen = await get(pb, '/m/regenerate', sessionCookie(onB)!);
    assert.match(line(regen)!, /; Max-Age=3600; Expires=/);
    const cookie = JSON.parse((await get(pb, '/m/cookie', sessionCookie(regen)!)).body).cookie;
    assert.equal(cookie.originalMaxAge, 3_600_000);
    // A session made a browser-session one before it exists keeps the configured idle timeout.
    const plain = await get(pa, '/m/cookie?maxAge=null&write=1');
    assert.doesNotMatch(line(plain)!, /Max-Age|Expires/);
    assert.equal(managerOf(cluster.node('a'), 1).sessions.get(idOf(sessionCookie(plain)!))!.maxInactiveInterval, 1800);
  });

  test('cookie.maxAge beyond 400 days is 400 days (as browsers keep it), not an error', async () => {
    const res = await get(pa, `/s/cookie?maxAge=${10 * 365 * 86_400_000}&write=1`);
    assert.equal(res.status, 200);
    assert.match(line(res)!, /; Max-Age=34560000; Expires=/);
  });

  test('regenerate() after the response ended fails (a session begun then would never be released)', async () => {
    const ma = managerOf(cluster.node('a'));
    const held = ma.sessions.size;
    lateError = undefined;
    await get(pa, '/s/late-regenerate');
    await waitFor(() => lateError !== undefined, 'the late regenerate to call back');
    assert.match(lateError!, /response has ended/);
    assert.equal(ma.sessions.size, held);
  });

  test('rolling re-sends the cookie on every response; saveUninitialized creates the session on first use', async () => {
    const first = await get(pa, '/r/read');
    assert.ok(line(first), 'saveUninitialized: a read creates the session');
    const again = await get(pa, '/r/read', sessionCookie(first)!);
    assert.equal(idOf(sessionCookie(again)!), idOf(sessionCookie(first)!), 'rolling: the same session, cookie re-sent');
    const s = await get(pa, '/s/write?name=k&value=1');
    assert.deepEqual((await get(pa, '/s/read', sessionCookie(s)!)).setCookie, [], 'not rolling: no cookie');
  });

  test('JSON.stringify and util.inspect show the data and the cookie, not internals; the reserved attribute is hidden', async () => {
    const made = await get(pa, '/s/cookie?maxAge=120000&write=data');
    const out = JSON.parse((await get(pa, '/s/show', sessionCookie(made)!)).body);
    assert.deepEqual(Object.keys(out.json), ['cookie', 'w']);
    assert.equal(out.json.w, 'data');
    assert.equal(out.cookie.originalMaxAge, 120_000);
    assert.equal(out.cookie.path, '/s');
    assert.equal(out.cookie.httpOnly, true);
    assert.equal(typeof out.cookie.expires, 'string');
    assert.match(out.inspect, /^Session \{/);
    assert.match(out.inspect, /w: 'data'/);
    assert.doesNotMatch(out.inspect, /host|proxy|RequestSession|manager/);
    assert.deepEqual(out.keys, ['w']);
    assert.deepEqual(out.names, ['w']);
    assert.equal(out.reservedRead, null);
    assert.match(out.reservedAssign, /reserved/);
    assert.match(out.reservedSetAttribute, /reserved/);
  });

  test('callbacks of save, reload, regenerate and destroy run after the call returned', async () => {
    const out = JSON.parse((await get(pa, '/s/callbacks')).body);
    assert.deepEqual(out.order, [
      'save:returned',
      'save:callback',
      'reload:returned',
      'reload:callback',
      'regenerate:returned',
      'regenerate:callback',
      'destroy:returned',
      'destroy:callback',
    ]);
  });

  test("another node's malformed cookie settings are ignored field by field, never written into Set-Cookie", async () => {
    const res = await get(pa, '/s/write?name=k&value=1');
    const id = idOf(sessionCookie(res)!);
    const mb = managerOf(cluster.node('b'));
    await waitFor(() => mb.sessions.has(id), 'B to receive the session');
    // What a faulty or hostile member could replicate as the reserved attribute.
    mb.sessions.get(id)!.setAttribute(RESERVED, {
      m: 'forever',
      d: 'evil.test; Domain=attacker.test',
      p: '/\r\nX-Injected: 1',
      s: 'Bogus',
      x: 'yes',
      h: false,
    });
    const onB = await get(pb, '/s/read', sessionCookie(res)!);
    assert.equal(
      line(onB),
      `JSESSIONID=${id}.b; Path=/s; SameSite=Lax`,
      'only the well-formed field (httpOnly false) applies',
    );
  });
});
