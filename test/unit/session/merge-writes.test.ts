// The write rules of merge.ts without a manager or a socket: stamping a local write (stamp,
// stampAlone) and applying a remote one (applyWrites): newer stamps win, stale writes are counted,
// unreplicated local changes are kept, and conflicts are reported only for writes that did not see
// each other.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode } from '../../../src/codec/value-codec.js';
import { newSessionId } from '../../../src/session/ids.js';
import { applyWrites, stamp, stampAlone, type WriteEvents } from '../../../src/session/merge.js';
import { receivedValues } from '../../../src/session/message-readers.js';
import { Attribute, Session, type SessionOwner } from '../../../src/session/session.js';

const owner: SessionOwner = { attributeChanged() {}, invalidate: () => undefined };

function session(version = 0): Session {
  const s = new Session(newSessionId(), 1000, 1000, 1800, owner);
  s.version = version;
  return s;
}

/** WriteEvents for node 'B' that records what it is told. */
function events(notify = true) {
  const conflicts: [string, string, string, boolean][] = [];
  const changed: [string, string][] = [];
  let stale = 0;
  const ev: WriteEvents = {
    localId: 'B',
    notify,
    conflict: (_s, name, local, remote, incomingWins) => conflicts.push([name, local, remote, incomingWins]),
    changed: (_s, name, kind) => changed.push([name, kind]),
    stale: () => {
      stale++;
    },
  };
  return { ev, conflicts, changed, stale: () => stale };
}

/** Applies a write of `writer` at `version` on top of `base`. */
function write(
  ev: WriteEvents,
  s: Session,
  version: number,
  base: number,
  writer: string,
  set: Record<string, unknown>,
  removed: string[] = [],
  now = 5000,
): void {
  const names = Object.keys(set);
  const values = receivedValues(
    names.map((n) => encode(set[n])),
    false,
  );
  applyWrites(ev, s, version, base, writer, names, values, removed, now);
}

function stampOf(a: Attribute | undefined): [number, string, number] {
  return [a!.v, a!.w, a!.b];
}

describe('stamp (a local write)', () => {
  it('the first write stamps every attribute; later ones only what changed, based on the version before', () => {
    const s = session(3);
    s.setAttribute('a', 1);
    s.setAttribute('b', 2);
    assert.equal(stamp(s, 'B'), 4);
    assert.deepEqual(stampOf(s.attributes.get('a')), [4, 'B', 3]);
    assert.deepEqual(stampOf(s.attributes.get('b')), [4, 'B', 3]);
    assert.equal(s.dirty, undefined, 'the changes are taken');
    s.announced = true;
    s.setAttribute('b', 3);
    assert.equal(stamp(s, 'B'), 5);
    assert.deepEqual(stampOf(s.attributes.get('a')), [4, 'B', 3], 'unchanged: its stamp stays');
    assert.deepEqual(stampOf(s.attributes.get('b')), [5, 'B', 4]);
  });

  it('a timeout change alone moves the version on and is taken', () => {
    const s = session(1);
    s.announced = true;
    s.setMaxInactiveInterval(60);
    assert.equal(s.maxInactiveDirty, true);
    assert.equal(stamp(s, 'B'), 2);
    assert.equal(s.maxInactiveDirty, false);
  });

  it('a changed name that is not held (defensive) is skipped', () => {
    const s = session(1);
    s.announced = true;
    s.dirty = new Set(['ghost']);
    assert.equal(stamp(s, 'B'), 2);
    assert.equal(s.attributes.has('ghost'), false);
  });

  it('stampAlone stamps only when there is something to stamp, and marks the session announced', () => {
    const s = session(0);
    s.setAttribute('a', 1);
    stampAlone(s, 'B');
    assert.equal(s.version, 1);
    assert.equal(s.announced, true);
    stampAlone(s, 'B');
    assert.equal(s.version, 1, 'nothing changed: no new version');
    s.setAttribute('a', 2);
    stampAlone(s, 'B');
    assert.equal(s.version, 2);
  });
});

describe('applyWrites (remote writes)', () => {
  it('adds, replaces and removes by stamp; the version moves on and the writer owns an idle session', () => {
    const { ev, changed, conflicts } = events();
    const s = session(0);
    write(ev, s, 1, -1, 'A', { x: 1, y: 'y' });
    assert.deepEqual([s.getAttribute('x'), s.getAttribute('y')], [1, 'y']);
    assert.deepEqual(
      stampOf(s.attributes.get('x')),
      [1, 'A', 1],
      'a CREATED (base -1) counts as having seen all before it',
    );
    write(ev, s, 2, 1, 'A', { x: 2 }, ['y']);
    assert.equal(s.getAttribute('x'), 2);
    assert.equal(s.getAttribute('y'), undefined);
    assert.equal(s.attributes.get('y')?.removed, true, 'a removal is a stamped tombstone');
    assert.deepEqual(stampOf(s.attributes.get('x')), [2, 'A', 1]);
    assert.equal(s.version, 2);
    assert.equal(s.ownerId, 'A');
    assert.equal(s.primary, false);
    assert.equal(s.lastAccessedTime, 5000);
    assert.deepEqual(changed, [
      ['x', 'added'],
      ['y', 'added'],
      ['x', 'replaced'],
      ['y', 'removed'],
    ]);
    assert.deepEqual(conflicts, []);
  });

  it('a session in use here keeps its owner; listeners hear nothing without notify', () => {
    const { ev, changed } = events(false);
    const s = session(0);
    s.ownerId = 'B';
    s.active = 1;
    write(ev, s, 1, -1, 'A', { x: 1 });
    assert.equal(s.ownerId, 'B');
    assert.equal(s.version, 1);
    assert.deepEqual(changed, []);
  });

  it('an older or duplicate write changes nothing and is counted stale', () => {
    const t = events();
    const s = session(0);
    write(t.ev, s, 3, 2, 'A', { x: 3 });
    write(t.ev, s, 3, 2, 'A', { x: 3 }); // duplicate
    write(t.ev, s, 2, 1, 'A', { x: 2 }); // reordered
    assert.equal(s.getAttribute('x'), 3);
    assert.equal(t.stale(), 2);
    assert.deepEqual(t.conflicts, [], 'the same writer: reordered, not a conflict');
  });

  it('equal versions: the higher writer id wins, on every node alike', () => {
    const t = events();
    const s = session(0);
    write(t.ev, s, 1, -1, 'A', { x: 'from A' });
    write(t.ev, s, 2, 1, 'C', { x: 'from C' });
    write(t.ev, s, 2, 1, 'A', { x: 'from A again' });
    assert.equal(s.getAttribute('x'), 'from C');
    assert.deepEqual(t.conflicts, [['x', 'C', 'A', false]], 'two writes on top of version 1: a conflict, C wins');
  });

  it("a newer write that had not seen this node's value is a conflict the newer one wins", () => {
    const t = events();
    const s = session(0);
    write(t.ev, s, 5, 4, 'C', { x: 'C5' });
    write(t.ev, s, 6, 3, 'A', { x: 'A6' }); // based on 3: never saw C's 5
    assert.equal(s.getAttribute('x'), 'A6');
    assert.deepEqual(t.conflicts, [['x', 'C', 'A', true]]);
    write(t.ev, s, 7, 6, 'C', { x: 'C7' }); // saw 6: no conflict
    assert.equal(t.conflicts.length, 1);
  });

  it('a local change not yet replicated is kept (it will be stamped newer); a conflict only if it had not seen the write', () => {
    const t = events();
    const s = session(0);
    write(t.ev, s, 1, -1, 'A', { x: 1 });
    s.announced = true;
    s.setAttribute('x', 'local'); // dirty, still stamped (1, A)
    write(t.ev, s, 2, 1, 'A', { x: 2 });
    assert.equal(s.getAttribute('x'), 'local', 'the local change stays');
    assert.deepEqual(t.conflicts, [['x', 'B', 'A', false]]);
    // after a fence (revert pending) this node's change is doomed: no conflict to report
    s.revert = () => {};
    write(t.ev, s, 3, 2, 'A', { x: 3 });
    assert.equal(t.conflicts.length, 1);
  });

  it('a write from before a local value it had seen (reordered) is not a conflict', () => {
    const t = events();
    const s = session(0);
    write(t.ev, s, 4, 3, 'C', { x: 'C4' });
    write(t.ev, s, 3, 2, 'A', { x: 'A3' }); // older, and C's 4 was based on 3: it saw A's write
    assert.equal(s.getAttribute('x'), 'C4');
    assert.deepEqual(t.conflicts, []);
    assert.equal(t.stale(), 1);
  });

  it('conflicts on an older write: none from a never-stamped local value, none from a CREATED, one from base 0', () => {
    const t = events();
    const s = session(0);
    const local = new Attribute(undefined, 5, '');
    local.b = 1;
    local.value = 'l';
    local.decoded = true;
    s.attributes.set('l', local);
    write(t.ev, s, 3, 2, 'A', { l: 'older' });
    assert.equal(s.getAttribute('l'), 'l');
    write(t.ev, s, 5, 1, 'C', { x: 'C5' });
    write(t.ev, s, 3, -1, 'A', { x: 'A3 created' });
    assert.deepEqual(t.conflicts, [], 'a CREATED older than our write: it was merely late');
    write(t.ev, s, 3, 0, 'A', { x: 'A3' });
    assert.deepEqual(t.conflicts, [['x', 'C', 'A', false]], "based on 0, below C's base: neither saw the other");
  });

  it('conflicts on a newer write: none from the same writer, a never-stamped value or a CREATED; one from base 0', () => {
    const t = events();
    const s = session(0);
    write(t.ev, s, 5, 4, 'A', { x: 'A5' });
    write(t.ev, s, 7, 3, 'A', { x: 'A7' }); // the same writer: its own order
    const local = new Attribute(undefined, 5, '');
    local.b = 1;
    local.value = 'l';
    local.decoded = true;
    s.attributes.set('l', local);
    write(t.ev, s, 8, 2, 'C', { l: 'C8' });
    assert.equal(s.getAttribute('l'), 'C8');
    write(t.ev, s, 9, -1, 'C', { x: 'C9' });
    assert.deepEqual(t.conflicts, []);
    assert.deepEqual(stampOf(s.attributes.get('x')), [9, 'C', 9], 'a CREATED: based on its own version');
    write(t.ev, s, 10, 0, 'A', { x: 'A10' });
    assert.deepEqual(t.conflicts, [['x', 'C', 'A', true]]);
    assert.deepEqual(stampOf(s.attributes.get('x')), [10, 'A', 0], 'the base travels');
  });

  it('an object value replaced remotely is read anew; a removed attribute written again is "added"', () => {
    const t = events();
    const s = session(0);
    write(t.ev, s, 1, -1, 'A', { o: { a: 1 } });
    assert.deepEqual(s.getAttribute('o'), { a: 1 }); // decoded now
    write(t.ev, s, 2, 1, 'A', { o: { a: 2 } });
    assert.deepEqual(s.getAttribute('o'), { a: 2 });
    write(t.ev, s, 3, 2, 'A', {}, ['o']);
    write(t.ev, s, 4, 3, 'A', {}, ['o']); // removed again: nothing to tell
    write(t.ev, s, 5, 4, 'A', { o: 'back' });
    assert.deepEqual(
      t.changed.filter(([n]) => n === 'o').map(([, k]) => k),
      ['added', 'replaced', 'removed', 'added'],
    );
  });

  it('a removal of an attribute never seen keeps a stamped tombstone', () => {
    const t = events();
    const s = session(0);
    write(t.ev, s, 3, 2, 'A', {}, ['never']);
    const a = s.attributes.get('never')!;
    assert.equal(a.removed, true);
    assert.deepEqual(stampOf(a), [3, 'A', 2]);
    assert.deepEqual(t.changed, [], 'no listener hears of a value it never had');
    write(t.ev, s, 2, 1, 'A', { never: 'older' });
    assert.equal(s.getAttribute('never'), undefined, 'an older write cannot bring it back');
  });

  it('stale: only a write that applied nothing, is not ahead of this copy, and carried something', () => {
    const t = events();
    const s = session(0);
    write(t.ev, s, 10, 9, 'A', { a: 1, b: 2 });
    write(t.ev, s, 5, 4, 'C', { c: 3 }); // older version, but a new attribute: applied
    write(t.ev, s, 4, 3, 'A', {}); // nothing in it (a timeout change): not stale
    assert.equal(t.stale(), 0);
    write(t.ev, s, 9, 8, 'A', { a: 0 }, ['b']); // one write and one removal, both older
    assert.equal(t.stale(), 1);
    s.announced = true;
    s.setAttribute('a', 'local');
    write(t.ev, s, 11, 10, 'C', { a: 'C' }); // kept back by the local change, but ahead: not stale
    assert.equal(t.stale(), 1);
    assert.equal(s.version, 11);
  });

  it('a write at the version this copy has already does not move the owner', () => {
    const t = events();
    const s = session(5);
    s.ownerId = 'B';
    s.primary = true;
    write(t.ev, s, 5, 4, 'C', { n: 1 });
    assert.equal(s.getAttribute('n'), 1);
    assert.equal(s.ownerId, 'B');
    assert.equal(s.primary, true);
  });

  it('without notify, replacing and removing tell no listener either', () => {
    const t = events(false);
    const s = session(0);
    write(t.ev, s, 1, -1, 'A', { x: 1 });
    write(t.ev, s, 2, 1, 'A', { x: 2 }, []);
    write(t.ev, s, 3, 2, 'A', {}, ['x']);
    assert.deepEqual(t.changed, []);
  });

  it('a new attribute keeps the base it was written on (0 included); a changed name not held here is simply added', () => {
    const t = events();
    const s = session(0);
    write(t.ev, s, 1, 0, 'A', { x: 1 });
    assert.deepEqual(stampOf(s.attributes.get('x')), [1, 'A', 0]);
    s.dirty = new Set(['ghost']); // defensive: a change recorded for a name with no attribute
    write(t.ev, s, 2, 1, 'A', { ghost: 'g' });
    assert.equal(s.getAttribute('ghost'), 'g');
  });
});
