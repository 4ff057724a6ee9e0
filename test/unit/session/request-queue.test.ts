// The per-session request lock of sessions.serialize (session/request-queue.ts) against a
// scripted host: no manager, no socket. FIFO, the bound, the timeout, aborts, the yield to members
// waiting for a hand-over, and that nothing is left behind.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newSessionId } from '../../../src/session/ids.js';
import {
  QUEUE_FULL,
  type QueueHost,
  RequestQueue,
  type SerialRequest,
  type SerialWait,
} from '../../../src/session/request-queue.js';
import { Session, type SessionOwner } from '../../../src/session/session.js';

const owner: SessionOwner = { attributeChanged() {}, invalidate: () => undefined };

/** A request that records when it started; `rest` is what it then waits for (a take-over). */
class Req implements SerialRequest {
  started = 0;
  constructor(
    readonly name: string,
    readonly log: string[],
    readonly rest?: Promise<void>,
  ) {}
  serialStart(): Promise<void> | undefined {
    this.started++;
    this.log.push(this.name);
    return this.rest;
  }
}

class Host implements QueueHost {
  yields: Promise<void>[] = [];
  yieldTo(): Promise<void> | undefined {
    return this.yields.shift();
  }
}

function setup(timeoutMs = 10_000, limit = 64) {
  const host = new Host();
  const queue = new RequestQueue(host, timeoutMs, limit);
  const s = new Session(newSessionId(), 0, 0, 1800, owner);
  return { host, queue, s, log: [] as string[] };
}

function isWait(w: SerialWait | undefined | typeof QUEUE_FULL): SerialWait {
  assert.ok(w !== undefined && w !== QUEUE_FULL, 'a wait');
  return w;
}

/** Whether `p` has settled, after the microtasks queued so far ran. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
}

function assertIdle(queue: RequestQueue, s: Session): void {
  assert.equal(s.serialHeld, false, 'the lock is free');
  assert.equal(s.serialQueue, undefined, 'no queue kept');
  assert.equal(queue.waiting, 0, 'no wait left for the timer');
}

describe('RequestQueue: one request of a session at a time', () => {
  it('uncontended: starts at once, allocates no queue, and frees the lock on leave', () => {
    const { queue, s, log } = setup();
    assert.equal(queue.enter(s, new Req('r1', log)), undefined);
    assert.deepEqual(log, ['r1']);
    assert.equal(s.serialHeld, true);
    assert.equal(s.serialQueue, undefined);
    assert.equal(queue.waiting, 0);
    queue.leave(s);
    assertIdle(queue, s);
    assert.deepEqual(queue.stats(), {
      serializeWaits: 0,
      serializeTimeouts: 0,
      serializeRefused: 0,
      serializeAborted: 0,
      serializeWaitMs: 0,
    });
  });

  it('FIFO: the waiting requests start one by one, in arrival order, each when the previous leaves', async () => {
    const { queue, s, log } = setup();
    queue.enter(s, new Req('r1', log));
    const waits = ['r2', 'r3', 'r4'].map((n) => isWait(queue.enter(s, new Req(n, log))));
    assert.deepEqual(log, ['r1']);
    assert.equal(s.serialQueue?.length, 3);
    for (let i = 0; i < 3; i++) {
      queue.leave(s);
      assert.equal(await waits[i]!.promise, 'go');
      assert.deepEqual(log, ['r1', 'r2', 'r3', 'r4'].slice(0, i + 2));
      if (i < 2) assert.equal(await settled(waits[i + 1]!.promise), false, 'the next one still waits');
    }
    queue.leave(s);
    assertIdle(queue, s);
    assert.equal(queue.stats().serializeWaits, 3);
  });

  it('bounded: beyond serializeQueueLimit waiting requests, one more is refused at once (counted)', () => {
    const { queue, s, log } = setup(10_000, 2);
    queue.enter(s, new Req('r1', log));
    isWait(queue.enter(s, new Req('r2', log)));
    isWait(queue.enter(s, new Req('r3', log)));
    assert.equal(queue.enter(s, new Req('r4', log)), QUEUE_FULL);
    assert.equal(queue.stats().serializeRefused, 1);
    assert.equal(s.serialQueue?.length, 2, 'the refused one is not queued');
  });

  it('a request that waits longer than the timeout is told so (counted) and leaves the queue; the others keep their place', async () => {
    const { queue, s, log } = setup(50);
    queue.enter(s, new Req('r1', log));
    const t0 = performance.now();
    const w2 = isWait(queue.enter(s, new Req('r2', log)));
    const w3 = isWait(queue.enter(s, new Req('r3', log)));
    assert.equal(await w2.promise, 'timeout');
    assert.ok(performance.now() - t0 >= 45, 'not before the bound');
    assert.equal(await w3.promise, 'timeout', 'one timer expired both (same bound, arrival order)');
    assert.equal(queue.stats().serializeTimeouts, 2);
    assert.ok(queue.stats().serializeWaitMs >= 90);
    assert.deepEqual(log, ['r1'], 'neither started');
    assert.equal(s.serialQueue, undefined, 'no entry left');
    assert.equal(queue.waiting, 0);
    queue.leave(s);
    assertIdle(queue, s);
  });

  it('a request whose client goes away while queued is dropped from the queue; the lock passes over it', async () => {
    const { queue, s, log } = setup();
    queue.enter(s, new Req('r1', log));
    const w2 = isWait(queue.enter(s, new Req('r2', log)));
    const w3 = isWait(queue.enter(s, new Req('r3', log)));
    queue.abort(w2);
    assert.equal(await w2.promise, 'aborted');
    assert.deepEqual(s.serialQueue, [w3]);
    queue.abort(w2); // again: nothing
    assert.equal(queue.stats().serializeAborted, 1);
    queue.leave(s);
    assert.equal(await w3.promise, 'go');
    assert.deepEqual(log, ['r1', 'r3'], 'r2 never started');
    queue.leave(s);
    assertIdle(queue, s);
  });

  it('a started request bounds its take-over by the same deadline: go when it is done, else timeout (the caller then leaves)', async () => {
    const { queue, s, log } = setup(50);
    let granted!: () => void;
    const takeOver = new Promise<void>((r) => {
      granted = r;
    });
    const w1 = isWait(queue.enter(s, new Req('r1', log, takeOver)));
    assert.equal(w1.started, true);
    assert.equal(await w1.promise, 'timeout');
    assert.equal(s.serialHeld, true, 'still held: the caller ends its use, then leaves');
    const w2 = isWait(queue.enter(s, new Req('r2', log)));
    queue.leave(s);
    assert.equal(await w2.promise, 'go');
    granted();
    queue.leave(s);
    assertIdle(queue, s);

    const quick = isWait(queue.enter(s, new Req('r3', log, Promise.resolve())));
    assert.equal(await quick.promise, 'go');
    queue.leave(s);
    assertIdle(queue, s);
  });

  it('members waiting for a hand-over go first: the request starts only after it (holding the local lock meanwhile)', async () => {
    const { host, queue, s, log } = setup();
    let handedOver!: () => void;
    host.yields.push(
      new Promise<void>((r) => {
        handedOver = r;
      }),
    );
    const w1 = isWait(queue.enter(s, new Req('r1', log)));
    const w2 = isWait(queue.enter(s, new Req('r2', log)));
    assert.deepEqual(log, [], 'r1 yields');
    assert.equal(s.serialQueue?.length, 1, 'r2 queues behind it');
    handedOver();
    assert.equal(await w1.promise, 'go');
    assert.deepEqual(log, ['r1']);
    queue.leave(s);
    assert.equal(await w2.promise, 'go');
    queue.leave(s);
    assertIdle(queue, s);
    assert.equal(queue.stats().serializeWaits, 2);
  });

  it('a request that times out while it yields keeps nothing: the lock passes on once the hand-over ends', async () => {
    const { host, queue, s, log } = setup(30);
    let handedOver!: () => void;
    host.yields.push(
      new Promise<void>((r) => {
        handedOver = r;
      }),
    );
    const w1 = isWait(queue.enter(s, new Req('r1', log)));
    assert.equal(await w1.promise, 'timeout');
    handedOver();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(log, []);
    assertIdle(queue, s);
  });

  it('a session that ended while its requests waited: they go on without it, one after the other', async () => {
    const { queue, s, log } = setup();
    queue.enter(s, new Req('r1', log));
    const w2 = isWait(queue.enter(s, new Req('r2', log)));
    const w3 = isWait(queue.enter(s, new Req('r3', log)));
    s.valid = false;
    queue.leave(s);
    assert.equal(await w2.promise, 'go');
    assert.equal(await w3.promise, 'go');
    assert.equal(w2.started || w3.started, false, 'neither began using it');
    assert.deepEqual(log, ['r1']);
    assertIdle(queue, s);
  });

  it('many sessions: each has its own lock', () => {
    const { queue, log } = setup();
    const sessions = Array.from({ length: 3 }, () => new Session(newSessionId(), 0, 0, 1800, owner));
    for (const s of sessions) assert.equal(queue.enter(s, new Req(s.id, log)), undefined);
    assert.equal(log.length, 3);
    for (const s of sessions) queue.leave(s);
    for (const s of sessions) assertIdle(queue, s);
  });
});
