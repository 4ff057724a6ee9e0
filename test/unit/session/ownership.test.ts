// The ownership protocol (ACQUIRE/GRANT) against a recording host: no manager, no socket. What
// one node sends and decides is checked message by message; the integration tests run it between
// real nodes.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Member } from '../../../src/channel/types.js';
import { newSessionId } from '../../../src/session/ids.js';
import { Msg } from '../../../src/session/messages.js';
import { Ownership, type OwnershipHost } from '../../../src/session/ownership.js';
import { Session, type SessionOwner } from '../../../src/session/session.js';

const CTX = 'app';
const sessionOwner: SessionOwner = { attributeChanged() {}, invalidate: () => undefined };

function member(id: string): Member {
  return { id, name: id, host: '127.0.0.1', port: 1, domain: '', startTime: 0, protocolVersion: 1, payload: undefined };
}
const B = member('B');
const C = member('C');
const D = member('D');

interface Sent {
  to: string;
  message: readonly unknown[];
  onError: ((err: Error) => void) | undefined;
}

/** A host for node 'A' that records what the protocol sends, counts and refuses. */
class Host implements OwnershipHost {
  readonly localId = 'A';
  readonly contextName = CTX;
  // Longer than any test needs (grants arrive synchronously), short enough that a mutant losing
  // an answer fails its test in 2 s instead of hanging on the timer.
  timeoutMs = 2_000;
  peers: Member[] = [B, C, D];
  /** A take-over of a session under way by another path (a BackupManager fetch), if any. */
  takingOver: ((id: string) => Promise<unknown> | undefined) | undefined = undefined;
  readonly sessions = new Map<string, Session>();
  readonly sent: Sent[] = [];
  readonly counts: string[] = [];
  readonly refusals: [string, string][] = [];
  readonly flushed: Session[] = [];
  /** Take-overs from a live owner that did not hand over: [session id, fenced owner]. */
  readonly fenced: [string, string][] = [];
  members(): Member[] {
    return this.peers;
  }
  session(id: string): Session | undefined {
    return this.sessions.get(id);
  }
  flush(s: Session): void {
    this.flushed.push(s);
  }
  post(to: Member, message: readonly unknown[], onError?: (err: Error) => void): void {
    this.sent.push({ to: to.id, message, onError });
  }
  count(counter: string): void {
    this.counts.push(counter);
  }
  fence(s: Session, ownerId: string): void {
    this.fenced.push([s.id, ownerId]);
  }
  refuse(counter: string, from: Member, why: string): void {
    assert.ok(why.length > 0, 'a refusal says why (it is logged)');
    this.refusals.push([counter, from.id]);
  }
  add(ownerId: string): Session {
    const s = new Session(newSessionId(), 0, 0, 1800, sessionOwner);
    s.ownerId = ownerId;
    this.sessions.set(s.id, s);
    return s;
  }
  /** The request id of the last ACQUIRE, after checking it went to `to` for `s`. */
  lastAcquire(to: string, s: Session): number {
    const last = this.sent.at(-1)!;
    assert.equal(last.to, to);
    assert.deepEqual(last.message.slice(0, 3), [Msg.ACQUIRE, CTX, s.id]);
    return last.message[3] as number;
  }
}

function setup(): { host: Host; own: Ownership } {
  const host = new Host();
  return { host, own: new Ownership(host) };
}

/** Whether `p` has settled, after the microtasks queued so far ran. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  return done;
}

describe('Ownership: acquiring', () => {
  it('a session this node owns, or nobody owns yet, needs no message (and an unowned one becomes ours)', () => {
    const { host, own } = setup();
    const mine = host.add('A');
    const nobody = host.add('');
    assert.equal(own.acquire(mine), undefined);
    assert.equal(own.acquire(nobody), undefined);
    assert.equal(nobody.ownerId, 'A');
    assert.deepEqual([host.sent, host.counts], [[], []]);
  });

  it('takes a session whose owner is no member any more, counted as forced', async () => {
    const { host, own } = setup();
    const s = host.add('gone');
    await own.acquire(s);
    assert.deepEqual([s.ownerId, s.primary], ['A', true]);
    assert.deepEqual(host.counts, ['ownershipForced']);
    assert.deepEqual(host.sent, []);
  });

  it('asks the owner, and owns the session as soon as its grant arrives', async () => {
    const { host, own } = setup();
    const s = host.add('B');
    const p = own.acquire(s)!;
    const again = own.acquire(s);
    assert.equal(again, p, 'concurrent requests share one acquire');
    assert.equal(host.sent.length, 1);
    const requestId = host.lastAcquire('B', s);
    assert.ok(Number.isSafeInteger(requestId) && requestId >= 0);
    own.onGrant([Msg.GRANT, CTX, s.id, requestId, 'A', true], B);
    assert.deepEqual([s.ownerId, s.primary], ['A', true], 'owned before the waiting request resumes');
    await p;
    assert.deepEqual(host.counts, ['ownershipMoves']);
    assert.deepEqual(host.refusals, []);
    const next = own.acquire(s);
    assert.equal(next, undefined, 'owned now: no new acquire');
  });

  it('follows a redirect to the member named, then owns it when that one grants', async () => {
    const { host, own } = setup();
    const s = host.add('B');
    const p = own.acquire(s)!;
    own.onGrant([Msg.GRANT, CTX, s.id, host.lastAcquire('B', s), 'C', false], B);
    await new Promise((r) => setImmediate(r));
    assert.equal(s.ownerId, 'B', 'not owned by a redirect');
    own.onGrant([Msg.GRANT, CTX, s.id, host.lastAcquire('C', s), 'A', true], C);
    await p;
    assert.deepEqual([s.ownerId, s.primary], ['A', true]);
    assert.deepEqual(host.counts, ['ownershipMoves', 'ownershipMoves']);
  });

  it('takes it, counted as forced, when the answer names this node or the member asked', async () => {
    for (const named of ['A', 'B']) {
      const { host, own } = setup();
      const s = host.add('B');
      const p = own.acquire(s)!;
      own.onGrant([Msg.GRANT, CTX, s.id, host.lastAcquire('B', s), named, false], B);
      await p;
      assert.deepEqual([s.ownerId, s.primary], ['A', true], named);
      assert.deepEqual(host.counts, ['ownershipMoves', 'ownershipForced'], named);
      assert.equal(host.sent.length, 1, named);
    }
  });

  it('stops following redirects after 16 hops and takes the session (counted as forced)', async () => {
    const { host, own } = setup();
    const s = host.add('B');
    const p = own.acquire(s)!;
    let asked = 'B';
    for (let hop = 0; hop <= 16; hop++) {
      const next = asked === 'B' ? 'C' : 'B';
      own.onGrant([Msg.GRANT, CTX, s.id, host.lastAcquire(asked, s), next, false], asked === 'B' ? B : C);
      await new Promise((r) => setImmediate(r));
      asked = next;
    }
    await p;
    assert.equal(host.sent.length, 17, 'the first ask and 16 redirects');
    assert.equal(s.ownerId, 'A');
    assert.equal(host.counts.at(-1), 'ownershipForced');
  });

  it('takes it at once, counted as a timeout, when the send fails (without waiting for timeoutMs)', async () => {
    const { host, own } = setup();
    const s = host.add('B');
    const p = own.acquire(s)!;
    host.sent[0]!.onError!(new Error('connection lost'));
    assert.equal(await settled(p), true, 'settled by the failure, not by the timer');
    assert.deepEqual([s.ownerId, s.primary], ['A', true]);
    assert.deepEqual(host.counts, ['ownershipMoves', 'ownershipTimeouts']);
  });

  it('takes it, counted as a timeout, when no answer comes within timeoutMs; a late grant is refused', async () => {
    const { host, own } = setup();
    host.timeoutMs = 20;
    const s = host.add('B');
    const started = performance.now();
    await own.acquire(s);
    assert.ok(performance.now() - started >= 15, 'waited for the timeout');
    assert.deepEqual([s.ownerId, s.primary], ['A', true]);
    assert.deepEqual(host.counts, ['ownershipMoves', 'ownershipTimeouts']);
    own.onGrant([Msg.GRANT, CTX, s.id, host.lastAcquire('B', s), 'A', true], B);
    assert.deepEqual(host.refusals, [['refusedGrant', 'B']]);
  });

  it('expires every acquire past its deadline with one timer, keeping the later ones waiting', async () => {
    const { host, own } = setup();
    host.timeoutMs = 20;
    const first = host.add('B');
    const p1 = own.acquire(first)!;
    // Long enough that no stall of a loaded machine expires it before the grant below; short
    // enough that a mutant losing the grant fails in seconds (it would time out, counted).
    host.timeoutMs = 10_000;
    const second = host.add('C');
    const p2 = own.acquire(second)!;
    await p1;
    assert.equal(await settled(p2), false, 'the later acquire still waits');
    own.onGrant([Msg.GRANT, CTX, second.id, host.lastAcquire('C', second), 'A', true], C);
    await p2;
    assert.deepEqual(host.counts, ['ownershipMoves', 'ownershipTimeouts', 'ownershipMoves']);
  });

  it('a grant for one acquire leaves the timer of another running: that one still times out', async () => {
    const { host, own } = setup();
    host.timeoutMs = 20;
    const first = host.add('B');
    const second = host.add('C');
    const p1 = own.acquire(first)!;
    const p2 = own.acquire(second)!;
    own.onGrant([Msg.GRANT, CTX, first.id, host.sent[0]!.message[3], 'A', true], B);
    await p1;
    // were the timer cleared with one acquire still waiting, nothing would keep the loop alive
    // and p2 would never settle (node:test fails the test at once)
    await p2;
    assert.equal(second.ownerId, 'A');
    assert.deepEqual(host.counts, ['ownershipMoves', 'ownershipMoves', 'ownershipTimeouts']);
  });

  it('waits with one timer for every acquire, and leaves none running once nothing waits', async () => {
    const { host, own } = setup();
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const first = host.add('B');
    const second = host.add('C');
    const p1 = own.acquire(first)!;
    const p2 = own.acquire(second)!;
    assert.equal(timers(), before + 1, 'one timer, not one per acquire');
    own.onGrant([Msg.GRANT, CTX, first.id, host.sent[0]!.message[3], 'A', true], B);
    await p1;
    assert.equal(timers(), before + 1, 'still armed for the acquire that waits');
    own.onGrant([Msg.GRANT, CTX, second.id, host.sent[1]!.message[3], 'A', true], C);
    await p2;
    assert.equal(timers(), before, 'no timer keeps a stopping process alive');
  });

  it('a send that fails after its acquire timed out changes nothing', async () => {
    const { host, own } = setup();
    host.timeoutMs = 5;
    const s = host.add('B');
    await own.acquire(s);
    host.sent[0]!.onError!(new Error('connection lost late'));
    assert.deepEqual(host.counts, ['ownershipMoves', 'ownershipTimeouts']);
  });

  it('refuses a grant from another member, for another session or for no request; the wait goes on', async () => {
    const { host, own } = setup();
    const s = host.add('B');
    const other = host.add('B');
    const p = own.acquire(s)!;
    const requestId = host.lastAcquire('B', s);
    own.onGrant([Msg.GRANT, CTX, s.id, requestId, 'A', true], C);
    own.onGrant([Msg.GRANT, CTX, other.id, requestId, 'A', true], B);
    own.onGrant([Msg.GRANT, CTX, s.id, requestId + 1, 'A', true], B);
    own.onGrant([Msg.GRANT, CTX, s.id, requestId, 'A', 'yes'], B);
    assert.deepEqual(host.refusals, [
      ['refusedGrant', 'C'],
      ['refusedGrant', 'B'],
      ['refusedGrant', 'B'],
      ['malformed', 'B'],
    ]);
    assert.equal(s.ownerId, 'B');
    assert.equal(other.ownerId, 'B');
    assert.equal(await settled(p), false);
    own.onGrant([Msg.GRANT, CTX, s.id, requestId, 'A', true], B);
    await p;
    assert.equal(s.ownerId, 'A');
  });
});

describe('Ownership: answering', () => {
  /** The GRANT sent last: [to, ownerId, granted], after checking its session and request id. */
  function lastGrant(host: Host, id: string, requestId: number): [string, unknown, unknown] {
    const { to, message } = host.sent.at(-1)!;
    assert.deepEqual(message.slice(0, 4), [Msg.GRANT, CTX, id, requestId]);
    return [to, message[4], message[5]];
  }

  it('refuses a malformed ACQUIRE, counted, and answers nothing', () => {
    const { host, own } = setup();
    own.onAcquire([Msg.ACQUIRE, CTX, 'not-an-id', 1], B);
    own.onAcquire([Msg.ACQUIRE, CTX, newSessionId(), -1], B);
    assert.deepEqual(host.refusals, [
      ['malformedIds', 'B'],
      ['malformed', 'B'],
    ]);
    assert.deepEqual(host.sent, []);
  });

  it('grants a session it does not have, has no owner for, or that the asker owns already', () => {
    const { host, own } = setup();
    const unknown = newSessionId();
    own.onAcquire([Msg.ACQUIRE, CTX, unknown, 1], B);
    assert.deepEqual(lastGrant(host, unknown, 1), ['B', 'B', true]);
    const unowned = host.add('');
    own.onAcquire([Msg.ACQUIRE, CTX, unowned.id, 2], B);
    assert.deepEqual(lastGrant(host, unowned.id, 2), ['B', 'B', true]);
    const theirs = host.add('B');
    own.onAcquire([Msg.ACQUIRE, CTX, theirs.id, 3], B);
    assert.deepEqual(lastGrant(host, theirs.id, 3), ['B', 'B', true]);
    const invalid = host.add('A');
    invalid.valid = false;
    own.onAcquire([Msg.ACQUIRE, CTX, invalid.id, 4], B);
    assert.deepEqual(lastGrant(host, invalid.id, 4), ['B', 'B', true]);
    assert.deepEqual(host.flushed, []);
  });

  it('redirects to the owner it knows when that is a third node', () => {
    const { host, own } = setup();
    const s = host.add('C');
    own.onAcquire([Msg.ACQUIRE, CTX, s.id, 9], B);
    assert.deepEqual(lastGrant(host, s.id, 9), ['B', 'C', false]);
    assert.equal(s.ownerId, 'C');
  });

  it('redirects at once, even while a request here still uses its copy of a session another node owns', () => {
    const { host, own } = setup();
    const s = host.add('C');
    s.active = 1;
    own.onAcquire([Msg.ACQUIRE, CTX, s.id, 9], B);
    assert.deepEqual(lastGrant(host, s.id, 9), ['B', 'C', false]);
    assert.equal(s.waiters, undefined);
  });

  it('hands over an idle session it owns at once: flushes, then grants, and is no longer primary', () => {
    const { host, own } = setup();
    const s = host.add('A');
    s.primary = true;
    own.onAcquire([Msg.ACQUIRE, CTX, s.id, 5], B);
    assert.deepEqual(host.flushed, [s]);
    assert.deepEqual([s.ownerId, s.primary], ['B', false]);
    assert.deepEqual(lastGrant(host, s.id, 5), ['B', 'B', true]);
  });

  it('hands over a session in use only once its requests here ended', () => {
    const { host, own } = setup();
    const s = host.add('A');
    s.active = 1;
    own.onAcquire([Msg.ACQUIRE, CTX, s.id, 5], B);
    assert.deepEqual([host.sent, host.flushed, s.ownerId], [[], [], 'A']);
    s.active = 0;
    own.handOver(s);
    assert.deepEqual([host.flushed, s.ownerId], [[s], 'B']);
    assert.deepEqual(lastGrant(host, s.id, 5), ['B', 'B', true]);
    assert.equal(s.waiters, undefined);
    own.handOver(s);
    assert.equal(host.sent.length, 1, 'each waiter runs once');
  });

  it('a waiting hand-over redirects if the session moved on meanwhile, and grants if it was invalidated', () => {
    const { host, own } = setup();
    const moved = host.add('A');
    moved.active = 1;
    own.onAcquire([Msg.ACQUIRE, CTX, moved.id, 1], B);
    moved.ownerId = 'D';
    own.handOver(moved);
    assert.deepEqual(lastGrant(host, moved.id, 1), ['B', 'D', false]);
    const gone = host.add('A');
    gone.active = 1;
    own.onAcquire([Msg.ACQUIRE, CTX, gone.id, 2], B);
    gone.valid = false;
    own.handOver(gone);
    assert.deepEqual(lastGrant(host, gone.id, 2), ['B', 'B', true]);
    assert.deepEqual(host.flushed, []);
  });

  it('while acquiring a session itself, answers an ACQUIRE for it only once it owns it', async () => {
    const { host, own } = setup();
    const s = host.add('C');
    const p = own.acquire(s)!;
    const requestId = host.lastAcquire('C', s);
    own.onAcquire([Msg.ACQUIRE, CTX, s.id, 77], B);
    assert.equal(host.sent.length, 1, 'no answer while this node waits for its own grant');
    own.onGrant([Msg.GRANT, CTX, s.id, requestId, 'A', true], C);
    await p;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(lastGrant(host, s.id, 77), ['B', 'B', true]);
    assert.deepEqual([s.ownerId, s.primary, host.flushed], ['B', false, [s]]);
  });
});

describe('Ownership with a take-over by another path (a BackupManager fetch "take")', () => {
  it('a request that finds a copy while a take of it is under way here asks nobody until the take ended', async () => {
    const { host, own } = setup();
    let endTake = () => {};
    const take = new Promise<void>((r) => {
      endTake = r;
    });
    host.takingOver = () => take;
    const s = host.add('C');
    const p = own.acquire(s)!;
    assert.equal(host.sent.length, 0, 'no ACQUIRE while the take may bring the ownership');
    s.ownerId = 'A'; // the take was granted
    endTake();
    await p;
    assert.equal(host.sent.length, 0, 'granted by the take: no ACQUIRE at all');
    assert.equal(s.ownerId, 'A');
  });

  it('a take that ended without the ownership is followed by an ACQUIRE of the owner it found', async () => {
    const { host, own } = setup();
    let endTake = () => {};
    host.takingOver = () =>
      new Promise<void>((r) => {
        endTake = r;
      });
    const s = host.add('C');
    const p = own.acquire(s)!;
    s.ownerId = 'D'; // the fetch found D serving it
    endTake();
    await new Promise((r) => setImmediate(r));
    const requestId = host.lastAcquire('D', s);
    own.onGrant([Msg.GRANT, CTX, s.id, requestId, 'A', true], D);
    await p;
    assert.equal(s.ownerId, 'A');
  });

  it('owned by a fetch grant meanwhile: the waiting request goes on, and the GRANT that still comes is taken', async () => {
    const { host, own } = setup();
    const s = host.add('C');
    const p = own.acquire(s)!;
    const requestId = host.lastAcquire('C', s);
    s.ownerId = 'A'; // a late grant of an earlier fetch
    own.ownedElsewhere(s.id);
    assert.equal(await settled(p), true, 'the request does not wait for C');
    // A hands it over to B, and later C (which had meanwhile come to own it) hands it over to A.
    s.ownerId = 'B';
    own.onGrant([Msg.GRANT, CTX, s.id, requestId, 'A', true], C);
    assert.equal(s.ownerId, 'A', 'C handed it over: refused, nobody would own it');
    assert.deepEqual(host.refusals, []);
  });
});
