// Conflicts across a partition (forks.ts with mergeRecord): two sides write the same attribute
// while apart, each advancing the session's version on its own. The plain base rule misses the
// conflict as soon as one side wrote at least two more times than the other (its last base is
// above the other side's version though it never saw it); the fork rule reports it, both ways,
// and reports nothing for writes that had seen each other.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode } from '../../../src/codec/value-codec.js';
import { Forks, REMOVAL_BATCH_MS } from '../../../src/session/forks.js';
import { mergeRecord, stamp } from '../../../src/session/merge.js';
import { receivedValues } from '../../../src/session/message-readers.js';
import { Attribute, Session, type SessionOwner } from '../../../src/session/session.js';
import { toRecord } from '../../../src/session/state-donor.js';

const owner: SessionOwner = { attributeChanged() {}, invalidate: () => undefined };

/** A replica of the session `id` at version 10, `count` = 10 written by `writer` (every node agrees). */
function replica(id: string, writer = 'A1'): Session {
  const s = new Session(id, 1000, 1000, 1800, owner);
  s.version = 10;
  const a = new Attribute(encode(10), 10, writer);
  a.b = 9;
  s.attributes.set('count', a);
  s.announced = true;
  return s;
}

/** `n` writes of `count` by `writer` on `s` (each stamped, as a request's end does). */
function writes(s: Session, forks: Forks, writer: string, n: number): void {
  for (let i = 0; i < n; i++) {
    forks.touch(s);
    s.setAttribute('count', (s.getAttribute('count') as number) + 1);
    stamp(s, writer);
  }
}

type Reported = [name: string, local: string, remote: string, incomingWins: boolean];

/** Merges `from`'s copy into `into` as a rejoin merge from member `fromId` does (copies.ts #takeRecord). */
function merge(into: Session, forks: Forks, from: Session, fromId: string): Reported[] {
  const r = toRecord(from);
  // The values as they arrive: encoded bytes (toRecord keeps scalars for the wire codec).
  r[6] = r[5].map((name) => encode(from.getAttribute(name)));
  const reported: Reported[] = [];
  forks.touch(into);
  mergeRecord(into, r, receivedValues(r[6], true), (...c) => reported.push(c), forks.apartWrites(into, fromId));
  return reported;
}

describe('Forks: conflicts across a partition', () => {
  for (const [a, b] of [
    [2, 5],
    [6, 3],
    [4, 4],
    [1, 9],
  ] as const) {
    it(`side A writes ${a} times, side B ${b} times: each side reports the conflict when it merges the other`, () => {
      const id = 'x'.repeat(32);
      const [onA, onB] = [replica(id), replica(id)];
      const [forksA, forksB] = [new Forks(), new Forks()];
      // Each side drops the other (one batch), then writes on its own.
      forksA.removed('B1', 1000);
      forksA.removed('B2', 1100);
      forksB.removed('A1', 1000);
      forksB.removed('A2', 1050);
      writes(onA, forksA, 'A2', a);
      writes(onB, forksB, 'B1', b);
      const bWins = b > a || (a === b && 'B1' > 'A2');
      // A merges B's sessions, B merges A's: the same conflict, the same winner, on both.
      const snapshotA = replica(id);
      snapshotA.attributes.set('count', Object.assign(new Attribute(undefined, 0, ''), onA.attributes.get('count')));
      snapshotA.version = onA.version;
      const onAReported = merge(onA, forksA, onB, 'B1');
      const onBReported = merge(onB, forksB, snapshotA, 'A1');
      assert.deepEqual(onAReported, [['count', 'A2', 'B1', bWins]]);
      assert.deepEqual(onBReported, [['count', 'B1', 'A2', !bWins]]);
      assert.equal(onA.getAttribute('count'), 10 + Math.max(a, b));
      assert.equal(onB.getAttribute('count'), 10 + Math.max(a, b));
    });
  }

  it('no conflict when only one side wrote, or the record is older than the fork', () => {
    const id = 'y'.repeat(32);
    const [onA, onB] = [replica(id), replica(id)];
    const forksA = new Forks();
    forksA.removed('B1', 1000);
    writes(onA, forksA, 'A1', 3);
    // B did not write: its record is the common version.
    assert.deepEqual(merge(onA, forksA, onB, 'B1'), []);
    assert.equal(onA.getAttribute('count'), 13);
    // A side that did not write merges the other's writes: newer, no conflict.
    const forksB = new Forks();
    forksB.removed('A1', 1000);
    assert.deepEqual(merge(onB, forksB, onA, 'A1'), []);
    assert.equal(onB.getAttribute('count'), 13);
  });

  it('no conflict for writes by members that were not apart, nor after the merge completed', () => {
    const id = 'z'.repeat(32);
    const forks = new Forks();
    forks.removed('B1', 1000);
    const here = replica(id);
    writes(here, forks, 'A1', 2);
    // B1's record carries a later write by A2 (a member on this side, not apart): sequential, not a conflict.
    const theirs = replica(id);
    writes(theirs, new Forks(), 'A1', 2);
    writes(theirs, new Forks(), 'A2', 3);
    assert.deepEqual(merge(here, forks, theirs, 'B1'), []);
    // Once merged, B1 is no longer apart: its later writes on top of ours are sequential.
    forks.merged('B1');
    writes(here, forks, 'A1', 2);
    const next = replica(id);
    next.attributes.set('count', Object.assign(new Attribute(undefined, 0, ''), here.attributes.get('count')));
    next.version = here.version;
    writes(next, new Forks(), 'B1', 5);
    assert.deepEqual(merge(here, forks, next, 'B1'), [], 'no fork rule for a member no longer apart');
  });

  it('a later batch of removals moves the fork: what was written before it is not concurrent with it', () => {
    const id = 'w'.repeat(32);
    const forks = new Forks();
    const here = replica(id);
    forks.removed('C1', 1000);
    writes(here, forks, 'A1', 2); // fork 10, for C1
    forks.removed('B1', 1000 + REMOVAL_BATCH_MS);
    writes(here, forks, 'A1', 1); // fork 12, for B1
    // B1 saw the two writes before it left, then wrote once more: version 13 by B1 vs 13 by A1.
    const theirs = replica(id);
    writes(theirs, new Forks(), 'A1', 2);
    writes(theirs, new Forks(), 'B1', 1);
    assert.deepEqual(merge(here, forks, theirs, 'B1'), [['count', 'A1', 'B1', true]]);
    assert.equal(forks.apartWrites(here, 'B1')?.fork, 12);
    // A member never removed from this side is not apart: no fork rule.
    assert.equal(forks.apartWrites(here, 'A2'), undefined);
  });
});
