/** Session cookie and identity: id shape, cookie attributes, no fixation, no session without use. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { field, get, idOf, managerOf, portOf, sessionCookie, startNodes, type TestCluster } from '../../helpers/http.js';

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
