/**
 * Synchronous replication (sendOptions 'sync'): the response is sent only once every member
 * applied the change, so a read on another node right after it never sees stale data. In
 * asynchronous mode, batchResponses orders a response after its change on the wire.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CookieJar,
  countOf,
  get,
  type HttpResponse,
  idOf,
  managerOf,
  portOf,
  sessionCookie,
  startNodes,
  type TestCluster,
} from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';
import { COUNTER_AND_PROBE, probe } from './apps.js';

const ROUNDS = 50;

/** Counter on A, then at once a read on B; returns how many reads on B were stale. */
async function staleReads(cluster: TestCluster, rounds: number): Promise<{ misses: number; worst: number }> {
  const pa = portOf(cluster.node('a'));
  const pb = portOf(cluster.node('b'));
  const jar = new CookieJar();
  let misses = 0;
  let worst = 0;
  for (let i = 1; i <= rounds; i++) {
    const r = await jar.get(pa, '/app/counter');
    assert.equal(countOf(r.body), i);
    // The jar's cookie names route a; reading on B does not change it.
    const seen = countOf((await get(pb, '/app/read', jar.cookie)).body);
    if (seen !== i) {
      misses++;
      worst = Math.max(worst, i - seen);
    }
  }
  // Whatever the mode, B ends up with the last value.
  await waitFor(
    () => managerOf(cluster.node('b')).sessions.get(jar.id)?.getAttribute('count') === rounds,
    'B to converge',
  );
  return { misses, worst };
}

/**
 * Runs `request` while B holds every synchronous acknowledgement (a second message handler on B
 * returns a promise that is released only at the end). Waits until B applied the change
 * (`applied`), then makes a full HTTP round trip to A: a response that was not held would have
 * arrived by then. Asserts it has not, releases, and returns the response.
 */
async function heldUntilAcknowledged(
  cluster: TestCluster,
  request: () => Promise<HttpResponse>,
  applied: () => boolean,
): Promise<HttpResponse> {
  const a = cluster.node('a');
  const b = cluster.node('b');
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const off = b.channel.onMessage(() => gate);
  try {
    let answered = false;
    const pending = request().then((r) => {
      answered = true;
      return r;
    });
    await waitFor(applied, 'B to apply the change');
    assert.equal((await get(portOf(a), '/app/health')).status, 200);
    assert.equal(answered, false, 'the response waits until B acknowledged the change');
    release();
    const res = await pending;
    assert.equal(res.status, 200);
    return res;
  } finally {
    release();
    off();
  }
}

describe('synchronous replication', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startNodes(2, {
      apps: COUNTER_AND_PROBE,
      sessions: { sendOptions: 'sync' },
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  test(`a read on B right after A's response sees the new count (${ROUNDS} rounds, 0 misses)`, async () => {
    const { misses } = await staleReads(cluster, ROUNDS);
    assert.equal(misses, 0);
  });

  test("A's response to a change is held until B acknowledged it", async () => {
    const jar = new CookieJar();
    await jar.get(portOf(cluster.node('a')), '/app/counter');
    const mb = managerOf(cluster.node('b'));
    const res = await heldUntilAcknowledged(
      cluster,
      () => get(portOf(cluster.node('a')), '/app/counter', jar.cookie),
      () => mb.sessions.get(jar.id)?.getAttribute('count') === 2,
    );
    assert.equal(countOf(res.body), 2);
  });

  test('a new session exists on B when its creating response arrives', async () => {
    const pa = portOf(cluster.node('a'));
    const b = managerOf(cluster.node('b'));
    for (let i = 0; i < 10; i++) {
      const jar = new CookieJar();
      await jar.get(pa, '/app/counter');
      assert.ok(b.sessions.has(idOf(jar.cookie!)), `session ${i} is on B`);
    }
  });

  test('invalidate(): the response is held until B dropped the session', async () => {
    const jar = new CookieJar();
    await jar.get(portOf(cluster.node('a')), '/app/counter');
    const id = jar.id;
    const mb = managerOf(cluster.node('b'));
    assert.ok(mb.sessions.has(id));
    await heldUntilAcknowledged(
      cluster,
      () => get(portOf(cluster.node('a')), '/app/invalidate', jar.cookie),
      () => !mb.sessions.has(id),
    );
  });

  for (const keep of [false, true])
    test(`regenerate(${keep ? '{ keep: true }' : ''}): the response (carrying the new id) is held until B ${keep ? 'renamed the session' : 'dropped the old session and holds the new one'}`, async () => {
      const jar = new CookieJar();
      await jar.get(portOf(cluster.node('a')), '/probe/set?name=user&value=u');
      const oldId = jar.id;
      const mb = managerOf(cluster.node('b'), 1);
      assert.ok(mb.sessions.has(oldId));
      let newId = '';
      const res = await heldUntilAcknowledged(
        cluster,
        () => get(portOf(cluster.node('a')), `/probe/regenerate?keep=${keep ? 1 : 0}`, jar.cookie),
        () => !mb.sessions.has(oldId) && (newId === '' || mb.sessions.has(newId)),
      );
      newId = (JSON.parse(res.body) as { newId: string }).newId;
      assert.equal(idOf(sessionCookie(res)!), newId);
      assert.ok(mb.sessions.has(newId), 'B holds the new session when the response arrives');
      assert.equal(mb.sessions.get(newId)?.getAttribute('user'), keep ? 'u' : undefined);
    });
});

/**
 * Asynchronous mode, ownership "none" (B reads its replica at once, without taking the session
 * over): whether a client that has A's response can find the change on B depends only on which
 * bytes left A first. The test process hosts both nodes and the client, so the moment the client
 * has a response, B has read every byte written to it before that response.
 */
describe('asynchronous replication: a response follows its change on the wire', () => {
  /** Counter on A; when the response is in, does B already hold the new count? Returns misses. */
  async function overtaken(cluster: TestCluster): Promise<number> {
    const pa = portOf(cluster.node('a'));
    const mb = managerOf(cluster.node('b'));
    const jar = new CookieJar();
    let misses = 0;
    for (let i = 1; i <= ROUNDS; i++) {
      const r = await jar.get(pa, '/app/counter');
      assert.equal(countOf(r.body), i);
      if (mb.sessions.get(jar.id)?.getAttribute('count') !== i) misses++;
    }
    await waitFor(() => mb.sessions.get(jar.id)?.getAttribute('count') === ROUNDS, 'B to converge');
    return misses;
  }

  test(`batchResponses (default): B holds the change whenever A's response is in (${ROUNDS} rounds)`, async () => {
    const cluster = await startNodes(2, { sessions: { ownership: 'none' } });
    try {
      assert.equal(await overtaken(cluster), 0);
    } finally {
      await cluster.stop();
    }
  });

  test('end() twice while the first end waits for the turn: the client gets the first body', async () => {
    const cluster = await startNodes(1, { apps: [{ path: '/probe', app: probe }] });
    try {
      const res = await get(portOf(cluster.node('a')), '/probe/end-twice');
      assert.equal(res.status, 200);
      assert.equal(res.body, 'first');
    } finally {
      await cluster.stop();
    }
  });

  test("batchResponses: false: the response is written before the turn's replication batch and overtakes it", async () => {
    const cluster = await startNodes(2, { sessions: { ownership: 'none', batchResponses: false } });
    try {
      assert.ok((await overtaken(cluster)) > 0, 'without batching, some responses arrive before their change');
    } finally {
      await cluster.stop();
    }
  });
});
