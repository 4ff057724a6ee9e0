/**
 * Session and attribute listeners: they fire on the node that made the change (replicated false)
 * and, with notifyListenersOnReplication (the default), on the others (replicated true).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import type { DeltaManager, Session } from '../../../src/index.js';
import { CookieJar, managerOf, portOf, startNodes, type TestCluster } from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';
import { probe } from './apps.js';

/** Records every listener event of `m` as a string, for sessions `accept` returns true for. */
function record(m: DeltaManager, out: string[]): () => void {
  const created = (_s: Session, replicated: boolean) => out.push(`created:${replicated}`);
  const added = (_s: Session, name: string, value: unknown, replicated: boolean) =>
    out.push(`added:${name}=${JSON.stringify(value)}:${replicated}`);
  const replaced = (_s: Session, name: string, value: unknown, replicated: boolean) =>
    out.push(`replaced:${name}=${JSON.stringify(value)}:${replicated}`);
  const removed = (_s: Session, name: string, replicated: boolean) => out.push(`removed:${name}:${replicated}`);
  const destroyed = (_s: Session, reason: string, replicated: boolean) => out.push(`destroyed:${reason}:${replicated}`);
  m.on('sessionCreated', created);
  m.on('attributeAdded', added);
  m.on('attributeReplaced', replaced);
  m.on('attributeRemoved', removed);
  m.on('sessionDestroyed', destroyed);
  return () => {
    m.off('sessionCreated', created);
    m.off('attributeAdded', added);
    m.off('attributeReplaced', replaced);
    m.off('attributeRemoved', removed);
    m.off('sessionDestroyed', destroyed);
  };
}

/** Create, add, replace, remove, invalidate on A, each step applied on B before the next. */
async function lifecycle(cluster: TestCluster): Promise<{ a: string[]; b: string[] }> {
  const a = cluster.node('a');
  const ma = managerOf(a);
  const mb = managerOf(cluster.node('b'));
  const events = { a: [] as string[], b: [] as string[] };
  const offA = record(ma, events.a);
  const offB = record(mb, events.b);
  try {
    const pa = portOf(a);
    const jar = new CookieJar();
    assert.equal((await jar.get(pa, '/probe/set-number?name=n&value=1')).status, 200);
    const id = jar.id;
    const s = () => mb.sessions.get(id);
    await waitFor(() => s()?.getAttribute('n') === 1, 'B: n=1');
    assert.equal((await jar.get(pa, '/probe/set-number?name=n&value=2')).status, 200);
    await waitFor(() => s()?.getAttribute('n') === 2, 'B: n=2');
    assert.equal((await jar.get(pa, '/probe/delete?name=n')).status, 200);
    await waitFor(() => s() !== undefined && !s()!.hasAttribute('n'), 'B: n removed');
    assert.equal((await jar.get(pa, '/probe/invalidate')).status, 200);
    assert.notEqual(jar.cookie, undefined, 'invalidate() sends no Set-Cookie, as express-session after destroy()');
    await waitFor(() => s() === undefined, 'B: session gone');
    assert.equal(ma.sessions.has(id), false);
  } finally {
    offA();
    offB();
  }
  return events;
}

const LOCAL = [
  'created:false',
  'added:n=1:false',
  'replaced:n=2:false',
  'removed:n:false',
  'destroyed:invalidated:false',
];

describe('listeners', () => {
  let cluster: TestCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  test('fire locally (replicated=false) and on the other node (replicated=true) by default', async () => {
    cluster = await startNodes(2, { apps: [{ path: '/probe', app: probe }] });
    const { a, b } = await lifecycle(cluster);
    assert.deepEqual(a, LOCAL);
    assert.deepEqual(b, [
      'created:true',
      'added:n=1:true',
      'replaced:n=2:true',
      'removed:n:true',
      'destroyed:invalidated:true',
    ]);
  });

  test('with notifyListenersOnReplication false they fire only on the node that made the change', async () => {
    cluster = await startNodes(2, {
      apps: [{ path: '/probe', app: probe }],
      sessions: { notifyListenersOnReplication: false },
    });
    const { a, b } = await lifecycle(cluster);
    assert.deepEqual(a, LOCAL);
    assert.deepEqual(b, []);
  });

  test('sessions received by state transfer fire sessionCreated (replicated) on the new node', async () => {
    cluster = await startNodes(1, { apps: [{ path: '/probe', app: probe }] });
    const jar = new CookieJar();
    await jar.get(portOf(cluster.node('a')), '/probe/set?name=k&value=v');
    const b = cluster.create('b');
    const seen: string[] = [];
    // The manager exists once start() has begun; listen before the transfer runs.
    const starting = b.start();
    await waitFor(() => b.managers.length === 1, 'B to create its manager');
    managerOf(b).on('sessionCreated', (s, replicated) => seen.push(`${s.id}:${replicated}`));
    await starting;
    cluster.nodes.push(b);
    assert.deepEqual(seen, [`${jar.id}:true`]);
  });
});
