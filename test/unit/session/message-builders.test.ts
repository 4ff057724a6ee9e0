// The message builders against their checked readers, through the codec: every message a manager
// builds is the layout of messages.ts, accepted by its reader after an encode/decode round trip,
// with each field where the reader (and an older node) expects it.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decode, encode } from '../../../src/codec/value-codec.js';
import { newSessionId } from '../../../src/session/ids.js';
import { stamp } from '../../../src/session/merge.js';
import {
  accessedMsg,
  acquireMsg,
  batchMsg,
  createdOf,
  deltaOf,
  expiredMsg,
  grantMsg,
  idChangedMsg,
  sessionDataMsg,
  sessionRequestMsg,
  stateChunkMsg,
  stateCompleteMsg,
  stateNoneMsg,
  stateRequestMsg,
  takenMsg,
  valuesOf,
} from '../../../src/session/message-builders.js';
import {
  Refused,
  readAccessed,
  readAcquire,
  readCreated,
  readDelta,
  readExpired,
  readGrant,
  readIdChanged,
  readRecord,
  readSessionRequest,
  readTaken,
  receivedValues,
} from '../../../src/session/message-readers.js';
import { Msg } from '../../../src/session/messages.js';
import { Session, type SessionOwner } from '../../../src/session/session.js';
import { toRecord } from '../../../src/session/state-donor.js';

const CTX = 'app';
const owner: SessionOwner = { attributeChanged() {}, invalidate: () => undefined };
const W = 'b'.repeat(32);

/** What a member receives: the message after the codec. */
function wire(m: unknown): unknown[] {
  return decode(encode(m)) as unknown[];
}

function ok<T>(r: T | Refused): T {
  assert.ok(!(r instanceof Refused), r instanceof Refused ? r.why : '');
  return r as T;
}

function session(): Session {
  const s = new Session(newSessionId(), 1000, 2000, 1800, owner);
  s.ownerId = W;
  return s;
}

describe('message builders', () => {
  it('CREATED of a session: every attribute held (not the removed), at the stamped version', () => {
    const s = session();
    s.setAttribute('a', 1);
    s.setAttribute('b', { deep: [1, 2] });
    s.setAttribute('gone', 'x');
    s.removeAttribute('gone');
    const m = createdOf(CTX, s, stamp(s, W));
    const r = ok(readCreated(wire(m)));
    assert.deepEqual([r[0], r[1], r[2], r[3], r[4], r[5]], [Msg.CREATED, CTX, s.id, 1000, 1800, 1]);
    assert.deepEqual(r[6], ['a', 'b']);
    const values = receivedValues(r[7], false);
    assert.deepEqual(
      values.map((v) => decode(v!.bytes)),
      [1, { deep: [1, 2] }],
    );
    assert.equal(valuesOf(m)?.length, 2);
  });

  it('DELTA of a session: the changed attributes from base to version, removals by name, the timeout only when changed', () => {
    const s = session();
    s.setAttribute('a', 1);
    s.setAttribute('b', 2);
    stamp(s, W);
    s.announced = true;
    s.setAttribute('a', 10);
    s.removeAttribute('b');
    const base = s.version;
    const changed = [...s.dirty!];
    const m = deltaOf(CTX, s, base, stamp(s, W, changed), changed, null);
    const r = ok(readDelta(wire(m)));
    assert.deepEqual([r[0], r[1], r[2], r[3], r[4]], [Msg.DELTA, CTX, s.id, 1, 2]);
    assert.deepEqual(r[5], ['a']);
    assert.equal((r[6] as unknown[]).length, 1, 'one value, for the one name set');
    assert.deepEqual(r[7], ['b']);
    assert.equal(r[8], null);
    assert.equal(decode(receivedValues(r[6], false)[0]!.bytes), 10);
    const t = ok(readDelta(wire(deltaOf(CTX, s, 2, 3, undefined, 60))));
    assert.deepEqual([t[5], t[7], t[8]], [[], [], 60]);
  });

  it('ACCESSED carries the read-only flag only when set (an older node reads its absence as false)', () => {
    const id = newSessionId();
    assert.deepEqual(wire(accessedMsg(CTX, id, 5, false)), [Msg.ACCESSED, CTX, id, 5]);
    const r = ok(readAccessed(wire(accessedMsg(CTX, id, 5, true))));
    assert.deepEqual([...r], [Msg.ACCESSED, CTX, id, 5, true]);
    assert.equal(valuesOf(accessedMsg(CTX, id, 5, true)), undefined);
  });

  it('EXPIRED, ID_CHANGED, SESSION_REQUEST, ACQUIRE, GRANT: the layouts their readers accept', () => {
    const id = newSessionId();
    const id2 = newSessionId();
    assert.deepEqual(
      [...ok(readExpired(wire(expiredMsg(CTX, id, 'invalidated'))))],
      [Msg.EXPIRED, CTX, id, 'invalidated'],
    );
    assert.deepEqual([...ok(readIdChanged(wire(idChangedMsg(CTX, id, id2))))], [Msg.ID_CHANGED, CTX, id, id2]);
    assert.deepEqual([...ok(readSessionRequest(wire(sessionRequestMsg(CTX, id))))], [Msg.SESSION_REQUEST, CTX, id]);
    assert.deepEqual([...ok(readAcquire(wire(acquireMsg(CTX, id, 42, 3))))], [Msg.ACQUIRE, CTX, id, 42, 3]);
    assert.deepEqual([...ok(readGrant(wire(grantMsg(CTX, id, 42, W, false))))], [Msg.GRANT, CTX, id, 42, W, false]);
  });

  it("SESSION_DATA and TAKEN carry a record their readers accept; TAKEN names the record's id and version", () => {
    const s = session();
    s.setAttribute('a', 'v');
    stamp(s, W);
    s.version = 7;
    const data = wire(sessionDataMsg(CTX, toRecord(s)));
    assert.deepEqual(data.slice(0, 2), [Msg.SESSION_DATA, CTX]);
    const r = ok(readRecord(data[2]));
    assert.deepEqual([r[0], r[4], r[5], r[9]], [s.id, 7, ['a'], W]);
    const t = ok(readTaken(wire(takenMsg(CTX, 'c'.repeat(32), toRecord(s)))));
    assert.deepEqual([t[0], t[1], t[2], t[3], t[4]], [Msg.TAKEN, CTX, s.id, 'c'.repeat(32), 7]);
  });

  it('BATCH and the state-transfer messages: type, context, then their fields in order', () => {
    const id = newSessionId();
    const inner = accessedMsg(CTX, id, 1, false);
    assert.deepEqual(wire(batchMsg(CTX, [inner, inner])), [Msg.BATCH, CTX, [[...inner], [...inner]]]);
    assert.deepEqual(wire(stateRequestMsg(CTX, 'r-1')), [Msg.STATE_REQUEST, CTX, 'r-1']);
    assert.deepEqual(wire(stateNoneMsg(CTX, 'r-1')), [Msg.STATE_NONE, CTX, 'r-1']);
    assert.deepEqual(wire(stateChunkMsg(CTX, 'r-1', 3, [])), [Msg.STATE_CHUNK, CTX, 'r-1', 3, []]);
    assert.deepEqual(wire(stateCompleteMsg(CTX, 'r-1', 9, [id])), [Msg.STATE_COMPLETE, CTX, 'r-1', 9, [id]]);
  });
});
