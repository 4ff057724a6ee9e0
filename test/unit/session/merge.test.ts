// mergeRecord without a manager or a socket: a whole record (state transfer, repair) merged into
// this node's copy by the stamps of its attributes.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode } from '../../../src/codec/value-codec.js';
import { newSessionId } from '../../../src/session/ids.js';
import { mergeRecord, revertTo } from '../../../src/session/merge.js';
import { receivedValues } from '../../../src/session/message-readers.js';
import type { SessionRecord } from '../../../src/session/messages.js';
import { Attribute, Session, type SessionOwner } from '../../../src/session/session.js';

const owner: SessionOwner = { attributeChanged() {}, invalidate: () => undefined };

function session(version = 5, ownerId = 'B'): Session {
  const s = new Session(newSessionId(), 1000, 1000, 1800, owner);
  s.version = version;
  s.ownerId = ownerId;
  return s;
}

/** A local attribute set to `value` with stamp (v, w). */
function local(s: Session, name: string, value: unknown, v: number, w: string): Attribute {
  const a = new Attribute(undefined, v, w);
  a.value = value;
  a.decoded = true;
  a.b = v - 1;
  s.attributes.set(name, a);
  return a;
}

/** A record of `version` owned by `ownerId`: [name, value (undefined = removed), stampV, stampW][]. */
function record(
  s: Session,
  version: number,
  ownerId: string,
  attrs: [string, unknown, number, string][],
): [SessionRecord, ReturnType<typeof receivedValues>] {
  const values = attrs.map(([, v]) => (v === undefined ? null : encode(v)));
  const r: SessionRecord = [
    s.id,
    1000,
    2000,
    1800,
    version,
    attrs.map(([n]) => n),
    values,
    attrs.map(([, , v]) => v),
    attrs.map(([, , , w]) => w),
    ownerId,
  ];
  return [r, receivedValues(values, true)];
}

describe('mergeRecord', () => {
  it('adds an attribute it did not have, with the stamp of the record and a base of that stamp', () => {
    const s = session();
    const [r, incoming] = record(s, 7, 'C', [['n', 'hello', 6, 'C']]);
    mergeRecord(s, r, incoming);
    const a = s.attributes.get('n')!;
    assert.equal(s.getAttribute('n'), 'hello');
    assert.deepEqual([a.v, a.w, a.b, a.removed], [6, 'C', 6, false]);
  });

  it('keeps a removal it did not know of as a stamped tombstone (an older write cannot revive it)', () => {
    const s = session();
    const [r, incoming] = record(s, 7, 'C', [['gone', undefined, 6, 'C']]);
    mergeRecord(s, r, incoming);
    const a = s.attributes.get('gone')!;
    assert.deepEqual([a.v, a.w, a.b, a.removed, a.bytes, a.decoded], [6, 'C', 6, true, undefined, false]);
    assert.equal(s.getAttribute('gone'), undefined);
    // the older write that the removal superseded does not come back
    const [older, olderIn] = record(s, 7, 'C', [['gone', 'back', 5, 'C']]);
    mergeRecord(s, older, olderIn);
    assert.equal(s.getAttribute('gone'), undefined);
  });

  it('takes a newer stamp (higher version, or same version and a higher writer id) and skips an older one', () => {
    const s = session(10);
    local(s, 'higher', 'mine', 5, 'B');
    local(s, 'tieHigherWriter', 'mine', 5, 'B');
    local(s, 'tieLowerWriter', 'mine', 5, 'B');
    local(s, 'same', 'mine', 5, 'B');
    local(s, 'lower', 'mine', 5, 'B');
    const [r, incoming] = record(s, 10, 'C', [
      ['higher', 'theirs', 6, 'A'],
      ['tieHigherWriter', 'theirs', 5, 'C'],
      ['tieLowerWriter', 'theirs', 5, 'A'],
      ['same', 'theirs', 5, 'B'],
      ['lower', 'theirs', 4, 'Z'],
    ]);
    mergeRecord(s, r, incoming);
    assert.equal(s.getAttribute('higher'), 'theirs');
    assert.equal(s.getAttribute('tieHigherWriter'), 'theirs');
    assert.equal(s.getAttribute('tieLowerWriter'), 'mine');
    assert.equal(s.getAttribute('same'), 'mine');
    assert.equal(s.getAttribute('lower'), 'mine');
    const taken = s.attributes.get('higher')!;
    assert.deepEqual([taken.v, taken.w, taken.b], [6, 'A', 6]);
    const kept = s.attributes.get('lower')!;
    assert.deepEqual([kept.v, kept.w, kept.b], [5, 'B', 4]);
  });

  it('does not overwrite an attribute changed here since the last replication, however new the stamp', () => {
    const s = session();
    local(s, 'n', 'mine', 5, 'B');
    s.dirty = new Set(['n']);
    const [r, incoming] = record(s, 9, 'C', [['n', 'theirs', 9, 'C']]);
    mergeRecord(s, r, incoming);
    assert.equal(s.getAttribute('n'), 'mine');
    assert.equal(s.attributes.get('n')!.v, 5);
  });

  it('a newer removal clears the value, its bytes and its decoded flag', () => {
    const s = session();
    const a = local(s, 'obj', { x: 1 }, 5, 'B');
    a.bytes = encode({ x: 1 });
    const [r, incoming] = record(s, 9, 'C', [['obj', undefined, 8, 'C']]);
    mergeRecord(s, r, incoming);
    assert.deepEqual(
      [a.removed, a.bytes, a.decoded, a.value, a.v, a.w, a.b],
      [true, undefined, false, undefined, 8, 'C', 8],
    );
    assert.equal(s.getAttribute('obj'), undefined);
  });

  it('a newer write brings back an attribute removed here, and keeps an object as its bytes until read', () => {
    const s = session();
    const a = new Attribute(undefined, 3, 'B', true);
    s.attributes.set('obj', a);
    const [r, incoming] = record(s, 9, 'C', [['obj', { deep: [1, 2] }, 8, 'C']]);
    mergeRecord(s, r, incoming);
    assert.equal(a.removed, false);
    assert.equal(a.decoded, false, 'an object is decoded on first read, not on arrival');
    assert.ok(a.bytes !== undefined);
    assert.deepEqual(s.getAttribute('obj'), { deep: [1, 2] });
  });

  it('returns the bytes of the values the record carried (removals carry none)', () => {
    const s = session();
    const [r, incoming] = record(s, 9, 'C', [
      ['a', 'xyz', 8, 'C'],
      ['b', undefined, 8, 'C'],
      ['c', { k: true }, 8, 'C'],
    ]);
    const expected = encode('xyz').length + encode({ k: true }).length;
    assert.equal(mergeRecord(s, r, incoming), expected);
    // counted even when the attribute is not taken (this node's copy is newer)
    const [again, againIn] = record(s, 9, 'C', [['a', 'xyz', 1, 'C']]);
    assert.equal(mergeRecord(s, again, againIn), encode('xyz').length);
  });

  it('moves the version on, and with it the owner the record names, only when the record is newer', () => {
    const s = session(5, 'B');
    const [same, sameIn] = record(s, 5, 'C', []);
    mergeRecord(s, same, sameIn);
    assert.deepEqual([s.version, s.ownerId], [5, 'B'], 'an equal version changes nothing');
    const [older, olderIn] = record(s, 4, 'C', []);
    mergeRecord(s, older, olderIn);
    assert.deepEqual([s.version, s.ownerId], [5, 'B']);
    const [newer, newerIn] = record(s, 6, 'C', []);
    mergeRecord(s, newer, newerIn);
    assert.deepEqual([s.version, s.ownerId], [6, 'C']);
  });

  it('keeps the owner while a request here is using the session (the version still moves on)', () => {
    const s = session(5, 'B');
    s.active = 1;
    const [r, incoming] = record(s, 6, 'C', []);
    mergeRecord(s, r, incoming);
    assert.deepEqual([s.version, s.ownerId], [6, 'B']);
    s.active = 0;
    const [next, nextIn] = record(s, 7, 'C', []);
    mergeRecord(s, next, nextIn);
    assert.deepEqual([s.version, s.ownerId], [7, 'C']);
  });
});

describe('mergeRecord: conflicts (the same attribute written on two nodes, neither seeing the other)', () => {
  /** The record of `record()` with the write bases appended. */
  function withBases(
    s: Session,
    version: number,
    attrs: [string, unknown, number, string, number][],
  ): [SessionRecord, ReturnType<typeof receivedValues>] {
    const [r, incoming] = record(
      s,
      version,
      'C',
      attrs.map(([n, v, sv, sw]) => [n, v, sv, sw]),
    );
    r[10] = attrs.map(([, , , , b]) => b);
    return [r, incoming];
  }
  type Seen = [string, string, string, boolean];
  function merge(s: Session, r: SessionRecord, incoming: ReturnType<typeof receivedValues>): Seen[] {
    const seen: Seen[] = [];
    mergeRecord(s, r, incoming, (name, l, w, wins) => seen.push([name, l, w, wins]));
    return seen;
  }

  it('both sides of a partition wrote it from the same base: a conflict, whichever write is newer', () => {
    // Both had version 5; A wrote n at 6 (base 5) on one side, C at 6 (base 5) on the other.
    const s = session(6);
    local(s, 'n', 'a', 6, 'A');
    const [r, incoming] = withBases(s, 6, [['n', 'c', 6, 'C', 5]]);
    assert.deepEqual(merge(s, r, incoming), [['n', 'A', 'C', true]]);
    assert.equal(s.getAttribute('n'), 'c', "C > A: C's write is kept, as everywhere");

    const t = session(6);
    local(t, 'n', 'c', 6, 'C').b = 5;
    const [r2, in2] = withBases(t, 6, [['n', 'a', 6, 'A', 5]]);
    assert.deepEqual(merge(t, r2, in2), [['n', 'C', 'A', false]]);
    assert.equal(t.getAttribute('n'), 'c');
  });

  it('a newer write that had seen ours, or an older one ours had seen, is no conflict', () => {
    const s = session(6);
    local(s, 'n', 'a', 6, 'A');
    const [r, incoming] = withBases(s, 7, [['n', 'c', 7, 'C', 6]]);
    assert.deepEqual(merge(s, r, incoming), []);
    assert.equal(s.getAttribute('n'), 'c');
    assert.equal(s.attributes.get('n')!.b, 6, 'the base travels with the write');

    const t = session(7);
    local(t, 'n', 'c', 7, 'C'); // base 6: had seen A's write at 6
    const [r2, in2] = withBases(t, 6, [['n', 'a', 6, 'A', 5]]);
    assert.deepEqual(merge(t, r2, in2), []);
    assert.equal(t.getAttribute('n'), 'c');
  });

  it('the same writer, the same stamp, or no bases (an older sender): no conflict reported', () => {
    const s = session(6);
    local(s, 'n', 'a', 5, 'A');
    local(s, 'm', 'x', 6, 'A');
    const [r, incoming] = withBases(s, 7, [
      ['n', 'a2', 7, 'A', 4],
      ['m', 'x', 6, 'A', 5],
    ]);
    assert.deepEqual(merge(s, r, incoming), []);
    assert.equal(s.getAttribute('n'), 'a2');

    const t = session(6);
    local(t, 'n', 'a', 6, 'A');
    const [old, inOld] = record(t, 6, 'C', [['n', 'c', 6, 'C']]);
    assert.deepEqual(merge(t, old, inOld), []);
    assert.equal(t.getAttribute('n'), 'c', 'merged by stamps all the same');
  });

  it('a local change not replicated yet: a concurrent newer write is a conflict the local one wins', () => {
    const s = session(6);
    local(s, 'n', 'a', 6, 'A');
    s.dirty = new Set(['n']);
    const [r, incoming] = withBases(s, 7, [['n', 'c', 7, 'C', 5]]);
    assert.deepEqual(merge(s, r, incoming), [['n', 'A', 'C', false]]);
    assert.equal(s.getAttribute('n'), 'a');
  });
});

describe('revertTo (the fence rule of a forced take-over)', () => {
  const FENCE = 1_000_000;

  it("takes the new owner's copy below the fence: differing attributes take its value, unknown ones are dropped, missing ones added, newer ones stay", () => {
    const s = session(10, 'A');
    local(s, 'same', 'kept', 4, 'B'); // as in the record: untouched
    local(s, 'late', 'fromA', 9, 'A'); // the fenced owner's late write
    local(s, 'extra', 'x', 8, 'A'); // not in the record: dropped
    local(s, 'after', 'new', FENCE + 1, 'B'); // written after the take-over: stays
    const [r, incoming] = record(s, FENCE, 'B', [
      ['same', 'kept', 4, 'B'],
      ['late', 'fromB', 6, 'B'],
      ['added', 'y', 7, 'B'],
    ]);
    const undone = revertTo(s, r, incoming, 'A', false);
    assert.equal(undone, 2, "A's two writes were undone");
    assert.equal(s.getAttribute('same'), 'kept');
    assert.equal(s.getAttribute('late'), 'fromB');
    assert.deepEqual(
      [s.attributes.get('late')!.v, s.attributes.get('late')!.w, s.attributes.get('late')!.b],
      [6, 'B', 6],
    );
    assert.equal(s.hasAttribute('extra'), false);
    assert.equal(s.getAttribute('added'), 'y');
    assert.equal(s.getAttribute('after'), 'new');
    assert.equal(s.version, FENCE, 'the copy is at the fence');
  });

  it('a removal in the record removes; local changes are dropped only with dropLocal', () => {
    const s = session(10, 'A');
    local(s, 'gone', 'still', 9, 'A');
    local(s, 'pending', 'mine', 9, 'A');
    s.dirty = new Set(['pending']) as never;
    s.maxInactiveDirty = true;
    const [r, incoming] = record(s, FENCE, 'B', [
      ['gone', undefined, 6, 'B'],
      ['pending', 'theirs', 6, 'B'],
    ]);
    assert.equal(revertTo(s, r, incoming, 'A', false), 1);
    assert.equal(s.getAttribute('gone'), undefined);
    assert.equal(s.attributes.get('gone')!.removed, true);
    assert.equal(s.getAttribute('pending'), 'mine', 'a change not replicated yet is kept without dropLocal');
    assert.notEqual(s.dirty, undefined, 'kept without dropLocal');
    assert.equal(s.maxInactiveDirty, true);
    assert.equal(s.maxInactiveInterval, 1800, 'a pending interval change is kept too');
    const s2 = session(10, 'A');
    local(s2, 'n', 1, 9, 'A');
    s2.dirty = new Set(['n']) as never;
    s2.maxInactiveDirty = true;
    s2.maxInactiveInterval = 60;
    const [r2, in2] = record(s2, FENCE, 'B', [['n', 0, 6, 'B']]);
    assert.equal(revertTo(s2, r2, in2, 'A', true), 1);
    assert.deepEqual([s2.dirty, s2.handedOut, s2.maxInactiveDirty], [undefined, undefined, false]);
    assert.equal(s2.maxInactiveInterval, 1800, "the record's interval once local changes are dropped");
    assert.equal(s2.getAttribute('n'), 0);
  });

  it('a copy already past the fence keeps its version', () => {
    const s = session(FENCE + 5, 'B');
    const [r, incoming] = record(s, FENCE, 'B', []);
    revertTo(s, r, incoming, 'A', false);
    assert.equal(s.version, FENCE + 5);
  });
});
