/**
 * Replication between two nodes over real sockets: failover with the route binder, nested
 * in-place mutation, unencodable values, parallel requests on one session, and a
 * non-distributable application.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  COUNTER_APP,
  CookieJar,
  countOf,
  field,
  get,
  idOf,
  managerOf,
  portOf,
  routeOf,
  sessionCookie,
  sessionCookieLine,
  startNodes,
  startPair,
  type TestCluster,
} from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';
import { APP, COUNTER_AND_PROBE, PROBE, probe } from './apps.js';

const LOCAL = 2;
const FILTERED = 3;

async function getJson<T = Record<string, unknown>>(port: number, path: string, cookie?: string): Promise<T> {
  const res = await get(port, path, cookie);
  assert.equal(res.status, 200, `${path}: ${res.body}`);
  return JSON.parse(res.body) as T;
}

describe('replication between two nodes', () => {
  let cluster: TestCluster;
  let pa: number;
  let pb: number;
  before(async () => {
    ({ cluster, pa, pb } = await startPair({
      apps: [
        ...COUNTER_AND_PROBE,
        { path: '/local', app: probe, distributable: false },
        { path: '/filtered', app: probe, sessions: { replicationFilter: '^/filtered/static/' } },
      ],
    }));
  });
  after(async () => {
    await cluster?.stop();
  });

  test('counter on A three times: B reads 3; on B with A cookie the route is re-bound to B and the count goes on', async () => {
    const jar = new CookieJar();
    for (let i = 1; i <= 3; i++) {
      const r = await jar.get(pa, '/app/counter');
      assert.equal(r.status, 200);
      assert.equal(countOf(r.body), i);
      assert.equal(field(r.body, 'node'), 'a');
    }
    const cookieA = jar.cookie!;
    assert.equal(routeOf(cookieA), 'a');
    const id = idOf(cookieA);
    await waitFor(
      async () => countOf((await get(pb, '/app/read', cookieA)).body) === 3,
      'B to read count=3 with the cookie issued by A',
    );

    const onB = await get(pb, '/app/counter', cookieA);
    assert.equal(onB.status, 200);
    assert.equal(countOf(onB.body), 4);
    assert.equal(field(onB.body, 'node'), 'b');
    assert.equal(field(onB.body, 'id'), id, 'the session keeps its id on failover');
    assert.equal(sessionCookieLine(onB), `JSESSIONID=${id}.b; Path=/app; HttpOnly; SameSite=Lax`);

    // A gets the change back, and the count goes on there too.
    const cookieB = sessionCookie(onB)!;
    await waitFor(
      () => managerOf(cluster.node('a'), APP).sessions.get(id)?.getAttribute('count') === 4,
      'A to see count=4 written on B',
    );
    const backOnA = await get(pa, '/app/counter', cookieB);
    assert.equal(countOf(backOnA.body), 5);
    assert.equal(sessionCookieLine(backOnA), `JSESSIONID=${id}.a; Path=/app; HttpOnly; SameSite=Lax`);
  });

  test('req.session.originalRoute names the node the cookie came from after failover', async () => {
    const created = await get(pa, '/probe/set?name=k&value=1');
    const cookieA = sessionCookie(created)!;
    assert.equal(routeOf(cookieA), 'a');
    const onA = await getJson<{ originalRoute: string | null; route: string }>(pa, '/probe/whoami', cookieA);
    assert.equal(onA.originalRoute, null, 'no failover: no original route');
    assert.equal(onA.route, 'a');
    await waitFor(() => managerOf(cluster.node('b'), PROBE).sessions.has(idOf(cookieA)), 'B to receive the session');
    const res = await get(pb, '/probe/whoami', cookieA);
    const who = JSON.parse(res.body) as { id: string; originalRoute: string | null; route: string; isNew: boolean };
    assert.equal(who.id, idOf(cookieA));
    assert.equal(who.originalRoute, 'a');
    assert.equal(who.route, 'b');
    assert.equal(who.isNew, false, 'a replicated session is not new on the other node');
    assert.equal(routeOf(sessionCookie(res)!), 'b');
  });

  test('rich values (Date, Map, Set, bigint, bytes, null-prototype objects) arrive intact on B', async () => {
    const res = await get(pa, '/probe/rich');
    const id = idOf(sessionCookie(res)!);
    const ma = managerOf(cluster.node('a'), PROBE);
    const mb = managerOf(cluster.node('b'), PROBE);
    await waitFor(() => mb.sessions.get(id)?.hasAttribute('rich'), 'B to receive it');
    const onB = mb.sessions.get(id)!.getAttribute('rich') as Record<string, unknown>;
    const onA = ma.sessions.get(id)!.getAttribute('rich') as Record<string, unknown>;
    const { proto: protoB, ...restB } = onB;
    const { proto: protoA, ...restA } = onA;
    assert.deepEqual(restB, restA);
    // A null-prototype object arrives as a plain object with the same keys.
    assert.deepEqual({ ...(protoB as object) }, { ...(protoA as object) });
    assert.ok(onB.date instanceof Date);
    assert.equal((onB.date as Date).getTime(), 1_700_000_000_000);
    assert.deepEqual(
      onB.map,
      new Map<unknown, unknown>([
        [1, 'one'],
        ['k', [1, 2]],
      ]),
    );
    assert.deepEqual(onB.set, new Set(['a', 'b']));
    assert.equal(onB.big, 12345678901234567890n);
    assert.deepEqual(Buffer.from(onB.bytes as Uint8Array), Buffer.from([0, 1, 254, 255]));
    assert.ok(Number.isNaN((onB.nested as { nan: number }).nan));
  });

  test('attributes named like Object.prototype members (constructor, __proto__, toString) are plain attributes', async () => {
    const jar = new CookieJar();
    const names = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'];
    for (const name of names) {
      const res = await jar.get(pa, `/probe/set?name=${name}&value=v-${name}`);
      assert.equal(res.status, 200, `${name}: ${res.body}`);
      const read = await jar.get(pa, `/probe/get?name=${name}`);
      assert.deepEqual(JSON.parse(read.body), { value: `v-${name}` }, `read ${name} on A`);
    }
    const id = idOf(jar.cookie!);
    const mb = managerOf(cluster.node('b'), PROBE);
    await waitFor(() => mb.sessions.get(id)?.hasAttribute('valueOf'), 'B to receive them');
    const onB = await jar.get(pb, '/probe/attrs');
    const { attrs } = JSON.parse(onB.body) as { attrs: Record<string, unknown> };
    for (const name of names) assert.equal(Object.getOwnPropertyDescriptor(attrs, name)?.value, `v-${name}`, name);
  });

  test('isNew() is true only in the request that created the session, and false on the other node', async () => {
    const jar = new CookieJar();
    const first = JSON.parse((await jar.get(pa, '/probe/whoami')).body) as { isNew: boolean };
    assert.equal(first.isNew, true);
    const second = JSON.parse((await jar.get(pa, '/probe/whoami')).body) as { isNew: boolean };
    assert.equal(second.isNew, false);
    await waitFor(() => managerOf(cluster.node('b'), PROBE).sessions.has(jar.id), 'B to receive it');
    const onB = JSON.parse((await get(pb, '/probe/whoami', jar.cookie)).body) as { isNew: boolean };
    assert.equal(onB.isNew, false);
  });

  test('in-place mutation of a nested object (no reassignment) replicates both ways', async () => {
    const jar = new CookieJar();
    const first = await jar.get(pa, '/probe/cart/add?n=10');
    assert.deepEqual(JSON.parse(first.body).items, [10]);
    const second = await jar.get(pa, '/probe/cart/add?n=20');
    assert.deepEqual(JSON.parse(second.body).items, [10, 20]);
    const id = jar.id;
    const b = managerOf(cluster.node('b'), PROBE);
    await waitFor(
      () => JSON.stringify(b.sessions.get(id)?.getAttribute('cart')) === '{"items":[10,20]}',
      'B to see cart.items [10, 20]',
    );
    const onB = await getJson<{ attrs: { cart: { items: number[] } } }>(pb, '/probe/attrs', jar.cookie);
    assert.deepEqual(onB.attrs.cart, { items: [10, 20] });
    // And back: B pushes in place, A sees it.
    await getJson(pb, '/probe/cart/add?n=30', jar.cookie);
    const a = managerOf(cluster.node('a'), PROBE);
    await waitFor(
      () => JSON.stringify(a.sessions.get(id)?.getAttribute('cart')) === '{"items":[10,20,30]}',
      'A to see cart.items [10, 20, 30]',
    );
  });

  test('an unencodable value throws at assignment naming the attribute; nothing of it is replicated', async () => {
    const res = await get(pa, '/probe/bad');
    assert.equal(res.status, 200, res.body);
    type Err = { code: string; message: string } | null;
    const out = JSON.parse(res.body) as {
      id: string;
      fn: Err;
      cls: Err;
      nested: Err;
      viaSetAttribute: Err;
      after: Record<string, string>;
      names: string[];
    };
    assert.ok(out.fn, 'assigning a function throws');
    assert.equal(out.fn.code, 'ERR_CLOWDER_CODEC_ENCODE');
    assert.ok(out.fn.message.includes('"fn"'), out.fn.message);
    assert.ok(out.cls, 'assigning a class instance throws');
    assert.equal(out.cls.code, 'ERR_CLOWDER_CODEC_ENCODE');
    assert.ok(out.cls.message.includes('"point"'), out.cls.message);
    assert.ok(out.nested, 'a function deep inside a plain object throws');
    assert.equal(out.nested.code, 'ERR_CLOWDER_CODEC_ENCODE');
    assert.ok(out.nested.message.includes('"nested"'), out.nested.message);
    assert.ok(out.viaSetAttribute, 'setAttribute throws too');
    assert.ok(out.viaSetAttribute.message.includes('"fn2"'), out.viaSetAttribute.message);
    assert.deepEqual(out.after, { fn: 'undefined', point: 'undefined', nested: 'undefined' });
    assert.deepEqual(out.names, ['ok']);

    const b = managerOf(cluster.node('b'), PROBE);
    await waitFor(() => b.sessions.get(out.id)?.getAttribute('ok') === 1, 'B to receive the session');
    assert.deepEqual(b.sessions.get(out.id)!.attributeNames(), ['ok']);
    const a = managerOf(cluster.node('a'), PROBE);
    assert.deepEqual(a.sessions.get(out.id)!.attributeNames(), ['ok']);
  });

  test('a value mutated in place into something unencodable is counted; the previous value stays replicated', async () => {
    const jar = new CookieJar();
    await jar.get(pa, '/probe/cart/add?n=1');
    const id = jar.id;
    const a = managerOf(cluster.node('a'), PROBE);
    const b = managerOf(cluster.node('b'), PROBE);
    await waitFor(() => b.sessions.get(id)?.hasAttribute('cart'), 'B to receive the cart');
    const before = a.stats().unencodable as number;
    const res = await jar.get(pa, '/probe/cart/poison');
    assert.equal(res.status, 200, 'the request is not failed');
    assert.equal((a.stats().unencodable as number) - before, 1);
    // A later, ordinary change still replicates; the cart on B stays what it was.
    await jar.get(pa, '/probe/set?name=marker&value=m');
    await waitFor(() => b.sessions.get(id)?.getAttribute('marker') === 'm', 'B to receive the marker');
    assert.deepEqual(b.sessions.get(id)!.getAttribute('cart'), { items: [1] });
  });

  test('64 parallel requests on one session on one node share one live object: count = 64, B agrees', async () => {
    const created = await get(pa, '/app/expire-soon?seconds=600');
    const cookie = sessionCookie(created)!;
    const results = await Promise.all(Array.from({ length: 64 }, () => get(pa, '/app/counter', cookie)));
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal(field(r.body, 'id'), idOf(cookie));
    }
    const counts = results.map((r) => countOf(r.body)).sort((x, y) => x - y);
    assert.deepEqual(
      counts,
      Array.from({ length: 64 }, (_, i) => i + 1),
      'every request saw and incremented the same live session',
    );
    assert.equal(countOf((await get(pa, '/app/read', cookie)).body), 64);
    assert.equal(managerOf(cluster.node('a'), APP).sessions.get(idOf(cookie))!.active, 0, 'no request left active');
    await waitFor(async () => countOf((await get(pb, '/app/read', cookie)).body) === 64, 'B to read count=64', {
      timeoutMs: 15_000,
    });
  });

  test('a non-distributable application keeps its sessions on its node', async () => {
    const a = managerOf(cluster.node('a'), LOCAL);
    const b = managerOf(cluster.node('b'), LOCAL);
    assert.equal(a.distributable, false);
    const res = await get(pa, '/local/set?name=secret&value=s');
    const cookie = sessionCookie(res)!;
    assert.equal(sessionCookieLine(res), `${cookie}; Path=/local; HttpOnly; SameSite=Lax`);
    const id = idOf(cookie);
    assert.equal(a.sessions.get(id)?.getAttribute('secret'), 's');
    // Control: a distributable app's change made after it does reach B.
    const control = await get(pa, '/probe/set?name=after&value=1');
    const controlId = idOf(sessionCookie(control)!);
    await waitFor(() => managerOf(cluster.node('b'), PROBE).sessions.has(controlId), 'the control session on B');
    assert.equal(b.sessions.size, 0, 'B holds no session of the non-distributable app');
    const onB = await getJson<{ attrs: unknown }>(pb, '/local/attrs', cookie);
    assert.equal(onB.attrs, null);
    assert.deepEqual(a.stats().sent, {}, 'nothing was sent for the non-distributable context');
    // Its context is not advertised either.
    const seenByB = cluster.node('b').channel.members()[0]!.payload as { contexts: string[] };
    assert.deepEqual([...seenByB.contexts].sort(), ['/app', '/filtered', '/probe']);
  });

  test('replicationFilter: a matching request sends nothing; what it changed still reaches B with the next request', async () => {
    const ma = managerOf(cluster.node('a'), FILTERED);
    const mb = managerOf(cluster.node('b'), FILTERED);
    const res = await get(pa, '/filtered/set?name=a&value=1');
    const cookie = sessionCookie(res)!;
    const id = idOf(cookie);
    await waitFor(() => mb.sessions.get(id)?.getAttribute('a') === '1', 'B to receive a=1');
    const sent = JSON.stringify(ma.stats().sent);
    const filtered = await get(pa, '/filtered/static/set?name=a&value=2', cookie);
    assert.equal(filtered.status, 200);
    assert.equal(ma.sessions.get(id)!.getAttribute('a'), '2');
    assert.equal(JSON.stringify(ma.stats().sent), sent, 'a filtered request sends nothing');
    // The next replicated request of the session carries everything changed since the last one.
    await get(pa, '/filtered/set?name=b&value=3', cookie);
    await waitFor(() => mb.sessions.get(id)?.getAttribute('b') === '3', 'B to receive b=3');
    assert.equal(mb.sessions.get(id)!.getAttribute('a'), '2', 'the change made in the filtered request is not lost');
  });
});

describe('replication only among the nodes that serve a context', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startNodes(3, {
      perNode: (i) => ({
        apps:
          i === 1
            ? [{ path: '/app', module: COUNTER_APP }]
            : [
                { path: '/app', module: COUNTER_APP },
                { path: '/extra', app: probe },
              ],
      }),
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  test('a context served by A and C only is replicated to C and never sent to B', async () => {
    const a = cluster.node('a');
    const b = cluster.node('b');
    const c = cluster.node('c');
    let extraOnB = 0;
    const off = b.channel.onMessage((msg) => {
      const v = msg.value;
      if (Array.isArray(v) && v[1] === '/extra') extraOnB++;
    });
    try {
      const res = await get(portOf(a), '/extra/set?name=k&value=v');
      const cookie = sessionCookie(res)!;
      await waitFor(() => managerOf(c, 1).sessions.get(idOf(cookie))?.getAttribute('k') === 'v', 'C to receive it');
      assert.equal((managerOf(a, 1).stats().sent as Record<string, number>).created, 1);
      // The shared context still reaches everyone; what A sent B before arrived before it (one connection).
      const shared = await get(portOf(a), '/app/counter');
      const id = idOf(sessionCookie(shared)!);
      await waitFor(
        () => managerOf(b).sessions.has(id) && managerOf(c).sessions.has(id),
        'B and C to receive the /app session',
      );
    } finally {
      off();
    }
    assert.equal(extraOnB, 0, 'B received nothing for /extra');
    assert.equal(await get(portOf(b), '/extra/set').then((r) => r.status), 404, 'B does not serve /extra');
  });
});
