/**
 * Asynchronous replication sends the changes of every request that ended in one event-loop turn
 * together at its end: one BATCH message per peer (one plain message when there is only one), in
 * the order the requests ended. Whatever is sent at once in between (an id change, an
 * invalidation, a stop) goes after the changes queued before it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type DeltaManager, encode, type Member, type Session } from '../../../src/index.js';
import { Msg } from '../../../src/session/messages.js';
import { managerOf, startPair, type TestCluster } from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';
import { received, stat } from './apps.js';

/** How many messages of `type` a manager sent. */
function sent(m: DeltaManager, type: string): number {
  return (m.stats().sent as Record<string, number>)[type] ?? 0;
}

/** One request on `s` that sets the given attributes, as the HTTP layer runs it; what its response waits for. */
function request(m: DeltaManager, s: Session, set: Record<string, unknown>): Promise<void> | undefined {
  m.requestStarted(s);
  for (const [k, v] of Object.entries(set)) s.setAttribute(k, v);
  return m.requestCompleted(s);
}

describe('asynchronous replication, one batch per event-loop turn', () => {
  let cluster: TestCluster;
  let ma: DeltaManager;
  let mb: DeltaManager;
  before(async () => {
    ({ cluster } = await startPair());
    ma = managerOf(cluster.node('a'));
    mb = managerOf(cluster.node('b'));
  });
  after(async () => {
    await cluster?.stop();
  });

  /** Node `name` as node `seenBy`'s channel lists it (the `from` of what it receives). */
  function memberAsSeenBy(seenBy: string, name: string): Member {
    const m = cluster
      .node(seenBy)
      .channel.members()
      .find((x) => x.name === name);
    if (m === undefined) throw new Error(`${seenBy} does not list ${name}`);
    return m;
  }

  /** A session made on A that B holds, with attribute n = 0. */
  async function replicated(): Promise<Session> {
    const s = ma.createSession();
    request(ma, s, { n: 0 });
    await waitFor(() => mb.sessions.get(s.id)?.getAttribute('n') === 0, 'B to receive the session');
    return s;
  }

  test('requests that end in one turn travel as one batch; the peer applies every change in order', async () => {
    const sessions = [await replicated(), await replicated(), await replicated()];
    const [batchesA, deltasA, batchesB, deltasB] = [
      sent(ma, 'batch'),
      sent(ma, 'delta'),
      received(mb, 'batch'),
      received(mb, 'delta'),
    ];
    const valueBytes = stat(ma, 'valueBytesSent');
    const fresh = ma.createSession();
    // One turn: three changes and a new session, nothing sent until the turn ends.
    for (const [i, s] of sessions.entries()) request(ma, s, { n: i + 1, payload: 'x'.repeat(100 * (i + 1)) });
    request(ma, fresh, { n: 42 });
    assert.equal(sent(ma, 'batch'), batchesA, 'nothing is sent before the turn ends');
    await waitFor(() => mb.sessions.get(fresh.id)?.getAttribute('n') === 42, 'B to receive the batch');
    assert.equal(sent(ma, 'batch'), batchesA + 1, 'A sent one batch');
    assert.equal(sent(ma, 'delta'), deltasA + 3, 'holding three deltas (counted one by one)');
    // Scalars travel as their own encoding: a number 10 bytes, a string its length + 7.
    assert.equal(stat(ma, 'valueBytesSent'), valueBytes + (10 + 107) + (10 + 207) + (10 + 307) + 10);
    assert.equal(received(mb, 'batch'), batchesB + 1);
    assert.equal(received(mb, 'delta'), deltasB + 3);
    sessions.forEach((s, i) => {
      const copy = mb.sessions.get(s.id)!;
      assert.equal(copy.getAttribute('n'), i + 1);
      assert.equal(copy.getAttribute('payload'), 'x'.repeat(100 * (i + 1)));
      assert.equal(copy.version, s.version, 'B is at the version A stamped');
    });
  });

  test('a batch never holds more than 256 KiB of values: a change that would pass the bound begins the next batch', async () => {
    const sessions = [await replicated(), await replicated(), await replicated(), await replicated()];
    const [batches, deltas] = [sent(ma, 'batch'), sent(ma, 'delta')];
    // ~100 KiB each: two fit in 256 KiB, a third would not.
    for (const [i, s] of sessions.entries()) request(ma, s, { payload: String(i).repeat(100 * 1024) });
    await waitFor(
      () => sessions.every((s, i) => mb.sessions.get(s.id)?.getAttribute('payload') === String(i).repeat(100 * 1024)),
      'B to receive the four changes',
    );
    assert.equal(sent(ma, 'batch'), batches + 2, 'two batches of two (not one of three, then one alone)');
    assert.equal(sent(ma, 'delta'), deltas + 4);
  });

  test('a change alone in its turn travels as a plain message, not a batch of one', async () => {
    const s = await replicated();
    const [batches, deltas] = [sent(ma, 'batch'), sent(ma, 'delta')];
    request(ma, s, { n: 7 });
    await waitFor(() => mb.sessions.get(s.id)?.getAttribute('n') === 7, 'B to receive the delta');
    assert.equal(sent(ma, 'batch'), batches);
    assert.equal(sent(ma, 'delta'), deltas + 1);
  });

  test('two requests on one session in one turn send one delta: the later value, one version step', async () => {
    const s = await replicated();
    const [deltas, version] = [sent(ma, 'delta'), s.version];
    request(ma, s, { n: 1, a: 'first' });
    request(ma, s, { n: 2 });
    await waitFor(() => mb.sessions.get(s.id)?.getAttribute('n') === 2, 'B to receive the delta');
    assert.equal(sent(ma, 'delta'), deltas + 1);
    assert.equal(s.version, version + 1);
    const copy = mb.sessions.get(s.id)!;
    assert.equal(copy.getAttribute('a'), 'first', 'the first request change travelled too');
    assert.equal(copy.version, s.version);
  });

  test('a change, then a new id in the same turn: the change goes first, under the id B knows', async () => {
    const s = await replicated();
    const old = s.id;
    const [repairs, malformed] = [sent(mb, 'sessionRequest'), stat(mb, 'malformed')];
    request(ma, s, { n: 5 });
    const { id } = ma.changeSessionId(s);
    await waitFor(() => mb.sessions.get(id)?.getAttribute('n') === 5, 'B to hold the changed session under its new id');
    assert.equal(mb.sessions.has(old), false, 'the old id is gone on B');
    assert.equal(sent(mb, 'sessionRequest'), repairs, 'B never saw a delta for an id it did not know');
    assert.equal(stat(mb, 'malformed'), malformed);
  });

  test('a change, then an invalidation in the same turn: B sees the change, then the session end', async () => {
    const s = await replicated();
    const seen: string[] = [];
    const onReplaced = (x: Session, name: string, value: unknown) => {
      if (x.id === s.id) seen.push(`${name}=${String(value)}`);
    };
    const onDestroyed = (x: Session) => {
      if (x.id === s.id) seen.push('destroyed');
    };
    mb.on('attributeReplaced', onReplaced);
    mb.on('sessionDestroyed', onDestroyed);
    try {
      request(ma, s, { n: 9 });
      s.invalidate();
      await waitFor(() => !mb.sessions.has(s.id), 'B to drop the session');
      assert.deepEqual(seen, ['n=9', 'destroyed']);
    } finally {
      mb.off('attributeReplaced', onReplaced);
      mb.off('sessionDestroyed', onDestroyed);
    }
  });

  test('a state transfer that starts in the turn takes the queued changes out first: no record carries changes its stamps do not', async () => {
    const s = await replicated();
    const b = memberAsSeenBy('a', 'b');
    const deltas = sent(ma, 'delta');
    request(ma, s, { n: 3 });
    // A state request arriving in the same turn (B ignores the answer: it asked for nothing).
    void ma.receive([Msg.STATE_REQUEST, '/app', 'turn-test'], b);
    assert.equal(sent(ma, 'delta'), deltas + 1, 'the change was sent before the first chunk was taken');
    await waitFor(() => mb.sessions.get(s.id)?.getAttribute('n') === 3, 'B to receive the change');
  });

  test('a batch is checked message by message: what is not a change of its context is dropped and counted', async () => {
    const s = await replicated();
    const a = memberAsSeenBy('b', 'a');
    const copy = mb.sessions.get(s.id)!;
    const version = copy.version;
    const malformed = stat(mb, 'malformed');
    const good = [Msg.DELTA, '/app', s.id, version, version + 1, ['n'], [encode(11)], [], null];
    await mb.receive([Msg.BATCH, '/app', 'not a list'], a);
    await mb.receive([Msg.BATCH, '/app', { 0: good, length: 1 }], a);
    await mb.receive(
      [
        Msg.BATCH,
        '/app',
        [
          [Msg.BATCH, '/app', [good]], // no batch inside a batch
          [Msg.STATE_REQUEST, '/app', 'r1'], // only changes
          [Msg.EXPIRED, '/app', s.id, 'invalidated'],
          [Msg.DELTA, '/other', s.id, version, version + 1, ['n'], [encode(12)], [], null], // another context
          7,
          null,
          good,
        ],
      ],
      a,
    );
    // More messages than any node sends in one batch: dropped whole, the good one too.
    const late = [Msg.DELTA, '/app', s.id, version + 1, version + 2, ['n'], [encode(13)], [], null];
    await mb.receive([Msg.BATCH, '/app', [...new Array(1024).fill([Msg.ACCESSED, '/app', 'x', 0]), late]], a);
    assert.equal(stat(mb, 'malformed'), malformed + 9);
    assert.equal(copy.valid, true, 'the expiry inside the batch was not applied');
    assert.equal(copy.getAttribute('n'), 11, 'the well-formed delta of the batch applied');
    assert.equal(copy.version, version + 1);
  });
});

describe('synchronous replication, one acknowledged batch per turn', () => {
  let cluster: TestCluster;
  before(async () => {
    ({ cluster } = await startPair({ sessions: { sendOptions: 'sync' } }));
  });
  after(async () => {
    await cluster?.stop();
  });

  test("the turn's requests wait for one batch, and when they are released B has applied every change", async () => {
    const ma = managerOf(cluster.node('a'));
    const mb = managerOf(cluster.node('b'));
    const sessions = [ma.createSession(), ma.createSession(), ma.createSession()];
    await Promise.all(sessions.map((s) => request(ma, s, { n: 0 })));
    assert.ok(
      sessions.every((s) => mb.sessions.get(s.id)?.getAttribute('n') === 0),
      'B held the new sessions when their requests were released',
    );
    const [batches, deltas] = [sent(ma, 'batch'), sent(ma, 'delta')];
    const waits = sessions.map((s, i) => request(ma, s, { n: i + 1 }));
    assert.ok(
      waits.every((w) => w instanceof Promise),
      'every request waits',
    );
    await Promise.all(waits);
    sessions.forEach((s, i) => {
      assert.equal(mb.sessions.get(s.id)?.getAttribute('n'), i + 1, `B applied session ${i}'s change`);
    });
    assert.equal(sent(ma, 'batch'), batches + 1, 'one batch for the three changes');
    assert.equal(sent(ma, 'delta'), deltas + 3);
  });
});

describe('asynchronous replication at shutdown', () => {
  let cluster: TestCluster;
  before(async () => {
    ({ cluster } = await startPair());
  });
  after(async () => {
    await cluster?.stop();
  });

  test('changes queued for the end of the turn are sent when the manager stops in that turn', async () => {
    const ma = managerOf(cluster.node('a'));
    const mb = managerOf(cluster.node('b'));
    const s = ma.createSession();
    request(ma, s, { n: 0 });
    await waitFor(() => mb.sessions.has(s.id), 'B to receive the session');
    const deltas = sent(ma, 'delta');
    request(ma, s, { n: 1, last: 'before stop' });
    const stopping = ma.stop();
    assert.equal(sent(ma, 'delta'), deltas + 1, 'stop() sent the queued change before anything else');
    await stopping;
    await waitFor(() => mb.sessions.get(s.id)?.getAttribute('last') === 'before stop', 'B to receive the last change');
    assert.equal(mb.sessions.get(s.id)!.getAttribute('n'), 1);
  });
});
