// Fair hand-over for sessions.serialize (ownership.ts): the hop count an ACQUIRE carries orders
// the owner's waiting askers (redirected ones first), and yieldTo lets the members already waiting
// for a hand-over go before this node's next serialized request. Against a recording host.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Member } from '../../../src/channel/types.js';
import { newSessionId } from '../../../src/session/ids.js';
import type { SessionMsg } from '../../../src/session/message-builders.js';
import { Refused, readAcquire } from '../../../src/session/message-readers.js';
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

class Host implements OwnershipHost {
  readonly localId = 'A';
  readonly contextName = CTX;
  timeoutMs = 2_000;
  readonly sessions = new Map<string, Session>();
  readonly sent: { to: string; message: readonly unknown[] }[] = [];
  readonly refusals: string[] = [];
  members(): Member[] {
    return [B, C];
  }
  session(id: string): Session | undefined {
    return this.sessions.get(id);
  }
  flush(): void {}
  post(to: Member, message: SessionMsg): void {
    this.sent.push({ to: to.id, message });
  }
  count(): void {}
  fence(): void {}
  refuse(counter: string): void {
    this.refusals.push(counter);
  }
  add(ownerId: string): Session {
    const s = new Session(newSessionId(), 0, 0, 1800, sessionOwner);
    s.ownerId = ownerId;
    this.sessions.set(s.id, s);
    return s;
  }
  /** The GRANT messages sent: [to, owner named, granted]. */
  grants(): [string, unknown, unknown][] {
    return this.sent.filter((x) => x.message[0] === Msg.GRANT).map((x) => [x.to, x.message[4], x.message[5]]);
  }
}

function setup(): { host: Host; own: Ownership } {
  const host = new Host();
  return { host, own: new Ownership(host) };
}

describe('Ownership: fair hand-over (sessions.serialize)', () => {
  it('an ACQUIRE carries how often its asker was redirected', async () => {
    const { host, own } = setup();
    const s = host.add('B');
    const p = own.acquire(s)!;
    assert.deepEqual(host.sent[0]!.message.slice(0, 3), [Msg.ACQUIRE, CTX, s.id]);
    assert.equal(host.sent[0]!.message[4], 0);
    own.onGrant([Msg.GRANT, CTX, s.id, host.sent[0]!.message[3], 'C', false], B);
    await new Promise((r) => setImmediate(r));
    assert.equal(host.sent[1]!.to, 'C');
    assert.equal(host.sent[1]!.message[4], 1, 'one redirect');
    own.onGrant([Msg.GRANT, CTX, s.id, host.sent[1]!.message[3], 'A', true], C);
    await p;
  });

  it('the owner serves askers redirected more often first, FIFO among equals; older nodes send no count (0)', () => {
    const { host, own } = setup();
    const s = host.add('A');
    s.active = 1; // a request here still uses it
    own.onAcquire([Msg.ACQUIRE, CTX, s.id, 1], B); // an older node: no hop count
    own.onAcquire([Msg.ACQUIRE, CTX, s.id, 2, 1], C); // redirected once: goes first
    own.onAcquire([Msg.ACQUIRE, CTX, s.id, 3, 0], B);
    assert.equal(s.waiters?.length, 3);
    assert.equal(host.sent.length, 0, 'nothing before the request here ends');
    s.active = 0;
    own.handOver(s);
    assert.deepEqual(host.grants(), [
      ['C', 'C', true],
      ['B', 'C', false],
      ['B', 'C', false],
    ]);
    assert.deepEqual(
      host.sent.map((x) => x.message[3]),
      [2, 1, 3],
    );
  });

  it('refuses an ACQUIRE whose hop count is not a small non-negative integer (counted as malformed)', () => {
    const id = newSessionId();
    for (const hops of [-1, 1.5, '1', 65])
      assert.ok(readAcquire([Msg.ACQUIRE, CTX, id, 1, hops]) instanceof Refused, String(hops));
    assert.ok(!(readAcquire([Msg.ACQUIRE, CTX, id, 1, 16]) instanceof Refused));
    const { host, own } = setup();
    own.onAcquire([Msg.ACQUIRE, CTX, host.add('A').id, 1, -1], B);
    assert.deepEqual(host.refusals, ['malformed']);
    assert.deepEqual(host.sent, []);
  });

  it('yieldTo: nothing to yield to when no member waits, or when another node owns the session', () => {
    const { host, own } = setup();
    assert.equal(own.yieldTo(host.add('A')), undefined);
    const theirs = host.add('B');
    theirs.waiters = [() => {}];
    assert.equal(own.yieldTo(theirs), undefined);
  });

  it('yieldTo: the member waiting is granted first; then the local request resumes and must ask it back', async () => {
    const { host, own } = setup();
    const s = host.add('A');
    s.active = 1;
    own.onAcquire([Msg.ACQUIRE, CTX, s.id, 7, 0], B);
    const yielded = own.yieldTo(s);
    assert.ok(yielded !== undefined);
    let resumed = false;
    yielded.then(() => (resumed = true));
    own.onAcquire([Msg.ACQUIRE, CTX, s.id, 8, 0], C); // after the local request: still before it (members first)
    s.active = 0;
    own.handOver(s);
    await yielded;
    assert.ok(resumed);
    assert.deepEqual(host.grants(), [
      ['B', 'B', true],
      ['C', 'B', false],
    ]);
    assert.equal(s.ownerId, 'B', 'the local request now takes it back from B');
    const back = own.acquire(s)!;
    assert.equal(host.sent.at(-1)!.to, 'B');
    own.onGrant([Msg.GRANT, CTX, s.id, host.sent.at(-1)!.message[3], 'A', true], B);
    await back;
    assert.equal(s.ownerId, 'A');
  });

  it('yieldTo: runs the hand-over itself when no request uses the session and no change waits for the turn', async () => {
    const { host, own } = setup();
    const s = host.add('A');
    s.waiters = [];
    s.waiters.push(() => {
      s.ownerId = 'B';
      host.post(B, [Msg.GRANT, CTX, s.id, 1, 'B', true]);
    });
    await own.yieldTo(s);
    assert.deepEqual(host.grants(), [['B', 'B', true]]);
    s.ownerId = 'A';
    s.waiters = [() => {}];
    s.queued = true; // the turn's end hands over (DeltaManager.endTurn): not here
    let resumed = false;
    own.yieldTo(s)!.then(() => (resumed = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(resumed, false);
    own.handOver(s);
    await new Promise((r) => setImmediate(r));
    assert.equal(resumed, true);
  });
});
