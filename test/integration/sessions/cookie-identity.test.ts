/** Session cookie and identity: id shape, cookie attributes, no fixation, no session without use. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RequestListener } from '../../../src/index.js';
import {
  field,
  get,
  idOf,
  managerOf,
  portOf,
  type SessionRequest,
  sessionCookie,
  startNodes,
  type TestCluster,
} from '../../helpers/http.js';

describe('session cookie and identity', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startNodes(1);
  });
  after(async () => {
    await cluster?.stop();
  });

  test('a new session gets a 128-bit hex id and JSESSIONID=<id>.<route>; Path=/app; HttpOnly; SameSite=Lax', async () => {
    const a = cluster.node('a');
    const res = await get(portOf(a), '/app/counter');
    assert.equal(res.status, 200);
    const lines = res.setCookie.filter((l) => l.startsWith('JSESSIONID='));
    assert.equal(lines.length, 1, `one session cookie, got ${JSON.stringify(res.setCookie)}`);
    const m = /^JSESSIONID=([0-9A-F]{32})\.a; Path=\/app; HttpOnly; SameSite=Lax$/.exec(lines[0]!);
    assert.ok(m, `cookie line ${lines[0]}`);
    const id = m[1]!;
    assert.equal(field(res.body, 'id'), id);
    assert.ok(managerOf(a).sessions.has(id));
    // 32 hex characters = 128 bits; two sessions never share an id.
    const again = await get(portOf(a), '/app/counter');
    assert.notEqual(idOf(sessionCookie(again)!), id);
  });

  test('the next request with the cookie uses the same session and does not re-issue the cookie', async () => {
    const a = cluster.node('a');
    const first = await get(portOf(a), '/app/counter');
    const cookie = sessionCookie(first)!;
    const second = await get(portOf(a), '/app/counter', cookie);
    assert.equal(field(second.body, 'count'), '2');
    assert.equal(field(second.body, 'id'), idOf(cookie));
    assert.deepEqual(second.setCookie, []);
  });

  for (const [what, value] of [
    ['a short id', 'DEADBEEF.x'],
    ['a valid-looking unknown 32-hex id', '0123456789ABCDEF0123456789ABCDEF.a'],
    ['a lower-case 32-hex id', '0123456789abcdef0123456789abcdef.a'],
    ['a path', '../etc'],
    ['an empty value', ''],
    ['an id with a trailing character', '0123456789ABCDEF0123456789ABCDEF0.a'],
  ] as const) {
    test(`a client-chosen id (${what}) never becomes the session id: a fresh one is issued`, async () => {
      const a = cluster.node('a');
      const manager = managerOf(a);
      const res = await get(portOf(a), '/app/counter', `JSESSIONID=${value}`);
      assert.equal(res.status, 200);
      assert.equal(field(res.body, 'count'), '1');
      const cookie = sessionCookie(res);
      assert.ok(cookie, 'a new cookie is issued');
      const id = idOf(cookie);
      assert.match(id, /^[0-9A-F]{32}$/);
      assert.notEqual(id, value.split('.')[0]);
      assert.equal(field(res.body, 'id'), id);
      assert.ok(!manager.sessions.has(value.split('.')[0]!.toUpperCase()), 'the client-chosen id was not adopted');
      for (const k of manager.sessions.keys()) assert.match(k, /^[0-9A-F]{32}$/);
    });
  }

  test("a live session's id in another shape (lower case, no dot before the route) does not reach that session", async () => {
    const a = cluster.node('a');
    const id = idOf(sessionCookie(await get(portOf(a), '/app/counter'))!);
    for (const value of [`${id.toLowerCase()}.a`, `${id}a`, `${id}-a`, `x${id}.a`]) {
      const res = await get(portOf(a), '/app/counter', `JSESSIONID=${value}`);
      assert.equal(field(res.body, 'count'), '1', value);
      assert.notEqual(field(res.body, 'id'), id, value);
    }
    assert.equal(field((await get(portOf(a), '/app/counter', `JSESSIONID=${id}.a`)).body, 'count'), '2');
  });

  test('/app/health and /app/read without a cookie create no session and set no cookie', async () => {
    const a = cluster.node('a');
    const manager = managerOf(a);
    const before = manager.sessions.size;
    const created = manager.stats().sessionsCreated;
    for (const path of ['/app/health', '/app/read', '/app/invalidate']) {
      const res = await get(portOf(a), path);
      assert.equal(res.status, 200, path);
      assert.deepEqual(res.setCookie, [], path);
    }
    assert.equal(manager.sessions.size, before);
    assert.equal(manager.stats().sessionsCreated, created);
  });

  test('an unknown id on a request that does not use the session creates nothing', async () => {
    const a = cluster.node('a');
    const manager = managerOf(a);
    const before = manager.sessions.size;
    const res = await get(portOf(a), '/app/read', 'JSESSIONID=0123456789ABCDEF0123456789ABCDEE.a');
    assert.equal(field(res.body, 'count'), '0');
    assert.deepEqual(res.setCookie, []);
    assert.equal(manager.sessions.size, before);
  });

  test('requests outside the context path get 404 and no session', async () => {
    const a = cluster.node('a');
    const manager = managerOf(a);
    const before = manager.sessions.size;
    for (const path of ['/', '/apps/counter', '/other']) {
      const res = await get(portOf(a), path);
      assert.equal(res.status, 404, path);
      assert.deepEqual(res.setCookie, []);
    }
    assert.equal(manager.sessions.size, before);
  });
});

describe('cookie settings', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startNodes(1, {
      sessions: { cookieName: 'SID', cookieSameSite: 'Strict', cookieSecure: true },
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  test('cookieName, cookieSameSite and cookieSecure shape the cookie, and the named cookie is read', async () => {
    const a = cluster.node('a');
    const res = await get(portOf(a), '/app/counter');
    const line = res.setCookie.find((l) => l.startsWith('SID='));
    assert.ok(line, JSON.stringify(res.setCookie));
    assert.match(line, /^SID=[0-9A-F]{32}\.a; Path=\/app; HttpOnly; SameSite=Strict; Secure$/);
    const cookie = sessionCookie(res, 'SID')!;
    const next = await get(portOf(a), '/app/counter', `other=1; ${cookie}`);
    assert.equal(field(next.body, 'count'), '2');
    // The default name is not read.
    const wrong = await get(portOf(a), '/app/read', `JSESSIONID=${cookie.slice(4)}`);
    assert.equal(field(wrong.body, 'count'), '0');
  });
});

describe('maxActiveSessions', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startNodes(1, { sessions: { maxActiveSessions: 2 } });
  });
  after(async () => {
    await cluster?.stop();
  });

  test('creating a session beyond the limit answers 503; existing sessions keep working', async () => {
    const a = cluster.node('a');
    const first = await get(portOf(a), '/app/counter');
    const second = await get(portOf(a), '/app/counter');
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    const third = await get(portOf(a), '/app/counter');
    assert.equal(third.status, 503, `documented: "creating more fails with 503" (got ${third.status})`);
    assert.deepEqual(third.setCookie, []);
    assert.equal(managerOf(a).sessions.size, 2);
    assert.equal(managerOf(a).stats().rejectedSessions, 1);
    const again = await get(portOf(a), '/app/counter', sessionCookie(first));
    assert.equal(field(again.body, 'count'), '2');
  });
});

describe('req.session.cookie.maxAge', () => {
  let cluster: TestCluster;
  before(async () => {
    const app: RequestListener = (req, res) => {
      const r = req as SessionRequest;
      r.session.cookie.maxAge = 60_000;
      r.session.user = 'u';
      if (req.url === '/write-head') {
        // The plain node:http style (as in examples/counter): headers first, then end().
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('ok');
      } else res.end('ok');
    };
    cluster = await startNodes(1, { apps: [{ path: '/m', app }] });
  });
  after(async () => {
    await cluster?.stop();
  });

  for (const path of ['/end-only', '/write-head']) {
    test(`makes the cookie persistent (Max-Age=60) — response via ${path.slice(1)}`, async () => {
      const res = await get(portOf(cluster.node('a')), `/m${path}`);
      assert.equal(res.status, 200);
      const line = res.setCookie.find((l) => l.startsWith('JSESSIONID='));
      assert.ok(line);
      assert.match(line, /; Max-Age=60(;|$)/, `Set-Cookie: ${line}`);
    });
  }
});
