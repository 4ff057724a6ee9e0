// The checked readers of session messages, without a manager or a socket: each accepts the layout
// in messages.ts and refuses, into the right counter, what is one step outside it.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode } from '../../../src/codec/value-codec.js';
import { newSessionId } from '../../../src/session/ids.js';
import {
  isVersion,
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
  readTombstones,
  receivedValues,
  tooFarAhead,
  VERSION_LIMIT,
  VERSION_STEP,
} from '../../../src/session/message-readers.js';
import { MSG_NAMES, MSG_TYPES, Msg } from '../../../src/session/messages.js';

const ID = newSessionId();
const ID2 = newSessionId();
const MEMBER = 'a'.repeat(32);

/** Asserts `r` is a refusal counted in `counter`. */
function refused(r: unknown, counter: string, what?: string): void {
  assert.ok(r instanceof Refused, `${what ?? 'message'} should be refused`);
  assert.equal(r.counter, counter, what);
  assert.ok(r.why.length > 0);
}

/** Asserts `read` returns the message itself (checked in place, not copied). */
function accepted(read: (m: unknown[]) => unknown, m: unknown[]): void {
  assert.equal(read(m), m);
}

describe('message layouts', () => {
  it('every type has a name, and MSG_TYPES is one more than the highest', () => {
    const types = Object.values(Msg);
    assert.equal(MSG_TYPES, Math.max(...types) + 1);
    assert.equal(MSG_TYPES, 25);
    for (const t of types) assert.ok(typeof MSG_NAMES[t] === 'string' && MSG_NAMES[t] !== '', `name of ${t}`);
    assert.equal(new Set(types.map((t) => MSG_NAMES[t])).size, types.length, 'names are distinct');
    assert.equal(MSG_NAMES[Msg.GRANT], 'grant');
    assert.equal(MSG_NAMES[Msg.DELTA], 'delta');
  });
});

describe('versions', () => {
  it('isVersion: integers from 0 to 2^52', () => {
    for (const v of [0, 1, VERSION_LIMIT]) assert.equal(isVersion(v), true, String(v));
    for (const v of [-1, VERSION_LIMIT + 1, 2 ** 53, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '1', null])
      assert.equal(isVersion(v), false, String(v));
    assert.equal(VERSION_LIMIT, 2 ** 52);
  });

  it('tooFarAhead: more than 2^32 past the local copy', () => {
    assert.equal(VERSION_STEP, 2 ** 32);
    assert.equal(tooFarAhead(10 + VERSION_STEP, 10), false);
    assert.equal(tooFarAhead(11 + VERSION_STEP, 10), true);
    assert.equal(tooFarAhead(5, 10), false);
  });
});

describe('readCreated', () => {
  const ok = () => [Msg.CREATED, 'ctx', ID, 1000.5, 1800, 3, ['a'], [encode(1)]];
  it('accepts the layout', () => accepted(readCreated, ok()));
  it('refuses each field one step out', () => {
    refused(readCreated(ok().slice(0, 7)), 'malformed', 'too short');
    refused(readCreated(Object.assign(ok(), { 2: 'abc' })), 'malformedIds', 'id');
    refused(readCreated(Object.assign(ok(), { 3: Number.NaN })), 'malformed', 'creation time');
    refused(readCreated(Object.assign(ok(), { 4: 1.5 })), 'malformed', 'timeout');
    refused(readCreated(Object.assign(ok(), { 5: -1 })), 'refusedVersion', 'version');
    refused(readCreated(Object.assign(ok(), { 6: ['a', 'b'] })), 'malformed', 'lists of different lengths');
    refused(readCreated(Object.assign(ok(), { 6: [1] })), 'malformed', 'a name that is not a string');
    refused(readCreated(Object.assign(ok(), { 6: 'a' })), 'malformed', 'names not a list');
    refused(readCreated(Object.assign(ok(), { 7: 'x' })), 'malformed', 'values not a list');
  });
});

describe('readDelta', () => {
  const ok = () => [Msg.DELTA, 'ctx', ID, 4, 5, ['a'], [encode('v')], ['r'], null];
  it('accepts the layout, with or without a timeout change', () => {
    accepted(readDelta, ok());
    accepted(readDelta, Object.assign(ok(), { 8: 60 }));
    accepted(readDelta, Object.assign(ok(), { 3: 0 }));
  });
  it('refuses a base that is not below the version', () => {
    refused(readDelta(Object.assign(ok(), { 3: 5 })), 'refusedVersion', 'base = version');
    refused(readDelta(Object.assign(ok(), { 3: 6 })), 'refusedVersion', 'base > version');
    refused(readDelta(Object.assign(ok(), { 3: -1 })), 'refusedVersion', 'negative base');
    refused(readDelta(Object.assign(ok(), { 3: 1.5 })), 'refusedVersion', 'fractional base');
    refused(readDelta(Object.assign(ok(), { 3: '4' })), 'refusedVersion', 'base not a number');
  });
  it('refuses each other field one step out', () => {
    refused(readDelta(ok().slice(0, 8)), 'malformed', 'too short');
    refused(readDelta(Object.assign(ok(), { 2: `${ID.slice(0, 31)}+` })), 'malformedIds', 'id'); // outside base64url
    refused(readDelta(Object.assign(ok(), { 4: VERSION_LIMIT + 1 })), 'refusedVersion', 'version');
    refused(readDelta(Object.assign(ok(), { 7: [1] })), 'malformed', 'removals');
    refused(readDelta(Object.assign(ok(), { 8: 1.5 })), 'malformed', 'timeout');
    refused(readDelta(Object.assign(ok(), { 8: undefined })), 'malformed', 'timeout missing');
    refused(readDelta(Object.assign(ok(), { 6: [] })), 'malformed', 'lists');
  });
});

describe('the short messages', () => {
  it('readAccessed: id, a finite time, an optional boolean', () => {
    accepted(readAccessed, [Msg.ACCESSED, 'ctx', ID, 5]);
    accepted(readAccessed, [Msg.ACCESSED, 'ctx', ID, 5, true]);
    accepted(readAccessed, [Msg.ACCESSED, 'ctx', ID, 5, false]);
    refused(readAccessed([Msg.ACCESSED, 'ctx', 7, 5]), 'malformedIds');
    refused(readAccessed([Msg.ACCESSED, 'ctx', ID, Number.POSITIVE_INFINITY]), 'malformed');
    refused(readAccessed([Msg.ACCESSED, 'ctx', ID, 5, 1]), 'malformed');
  });
  it('readExpired and readSessionRequest: a session id', () => {
    accepted(readExpired, [Msg.EXPIRED, 'ctx', ID, 'x']);
    refused(readExpired([Msg.EXPIRED, 'ctx', 'no']), 'malformedIds');
    accepted(readSessionRequest, [Msg.SESSION_REQUEST, 'ctx', ID]);
    refused(readSessionRequest([Msg.SESSION_REQUEST, 'ctx']), 'malformedIds');
  });
  it('readIdChanged: two different session ids', () => {
    accepted(readIdChanged, [Msg.ID_CHANGED, 'ctx', ID, ID2]);
    refused(readIdChanged([Msg.ID_CHANGED, 'ctx', 'x', ID2]), 'malformedIds', 'old id');
    refused(readIdChanged([Msg.ID_CHANGED, 'ctx', ID, 'x']), 'malformedIds', 'new id');
    refused(readIdChanged([Msg.ID_CHANGED, 'ctx', ID, ID]), 'malformed', 'same id');
  });
  it('readAcquire: a non-negative safe integer request id', () => {
    accepted(readAcquire, [Msg.ACQUIRE, 'ctx', ID, 0]);
    accepted(readAcquire, [Msg.ACQUIRE, 'ctx', ID, Number.MAX_SAFE_INTEGER]);
    refused(readAcquire([Msg.ACQUIRE, 'ctx', 'x', 1]), 'malformedIds');
    refused(readAcquire([Msg.ACQUIRE, 'ctx', ID, -1]), 'malformed');
    refused(readAcquire([Msg.ACQUIRE, 'ctx', ID, 2 ** 53]), 'malformed');
    refused(readAcquire([Msg.ACQUIRE, 'ctx', ID, '1']), 'malformed');
  });
  it('readGrant: a safe request id, an owner id of at most 64 characters, a boolean', () => {
    accepted(readGrant, [Msg.GRANT, 'ctx', ID, 1, MEMBER, true]);
    accepted(readGrant, [Msg.GRANT, 'ctx', ID, 1, 'b'.repeat(64), false]);
    refused(readGrant([Msg.GRANT, 'ctx', 'x', 1, MEMBER, true]), 'malformedIds');
    refused(readGrant([Msg.GRANT, 'ctx', ID, 1.5, MEMBER, true]), 'malformed', 'request id');
    refused(readGrant([Msg.GRANT, 'ctx', ID, '1', MEMBER, true]), 'malformed', 'request id type');
    refused(readGrant([Msg.GRANT, 'ctx', ID, 1, 'b'.repeat(65), true]), 'malformed', 'owner id too long');
    refused(readGrant([Msg.GRANT, 'ctx', ID, 1, 7, true]), 'malformed', 'owner id type');
    // a list has a length too: only a string is a member id
    refused(readGrant([Msg.GRANT, 'ctx', ID, 1, [MEMBER], true]), 'malformed', 'owner id a list');
    refused(readGrant([Msg.GRANT, 'ctx', ID, 1, MEMBER, 1]), 'malformed', 'granted flag');
  });
});

describe('too short', () => {
  it('a message or record cut short counts as malformed, not as a bad session id', () => {
    refused(readCreated([Msg.CREATED, 'ctx']), 'malformed', 'created');
    refused(readDelta([Msg.DELTA, 'ctx']), 'malformed', 'delta');
    refused(readRecord([]), 'malformed', 'record');
    refused(readRecord('x'.repeat(40)), 'malformed', 'a string as long as a record');
  });
});

describe('readRecord', () => {
  const ok = () => [ID, 1000, 2000.5, 1800, 9, ['a', 'b'], [encode(1), null], [9, 3], [MEMBER, MEMBER], MEMBER];
  it('accepts the layout (stamps up to the version)', () => accepted(readRecord as (m: unknown[]) => unknown, ok()));
  it('refuses each field one step out', () => {
    refused(readRecord('x'), 'malformed', 'not a list');
    refused(readRecord(ok().slice(0, 9)), 'malformed', 'too short');
    refused(readRecord(Object.assign(ok(), { 0: 'x' })), 'malformedIds', 'id');
    refused(readRecord(Object.assign(ok(), { 1: Number.NaN })), 'malformed', 'creation time');
    refused(readRecord(Object.assign(ok(), { 2: Number.NaN })), 'malformed', 'access time');
    refused(readRecord(Object.assign(ok(), { 3: 0.5 })), 'malformed', 'timeout');
    refused(readRecord(Object.assign(ok(), { 4: -1 })), 'refusedVersion', 'version');
    refused(readRecord(Object.assign(ok(), { 4: VERSION_LIMIT + 1 })), 'refusedVersion', 'version above 2^52');
    refused(readRecord(Object.assign(ok(), { 6: [null] })), 'malformed', 'values');
    refused(readRecord(Object.assign(ok(), { 7: 'x' })), 'malformed', 'stamp versions not a list');
    refused(readRecord(Object.assign(ok(), { 8: 'x' })), 'malformed', 'stamp writers not a list');
    refused(readRecord(Object.assign(ok(), { 7: [9] })), 'malformed', 'too few stamp versions');
    refused(readRecord(Object.assign(ok(), { 8: [MEMBER] })), 'malformed', 'too few stamp writers');
    refused(readRecord(Object.assign(ok(), { 7: [9, 3, 1] })), 'malformed', 'too many stamp versions');
    refused(readRecord(Object.assign(ok(), { 8: [MEMBER, MEMBER, MEMBER] })), 'malformed', 'too many stamp writers');
    refused(readRecord(Object.assign(ok(), { 7: '93' })), 'malformed', 'stamp versions a string of the right length');
    refused(readRecord(Object.assign(ok(), { 8: 'ab' })), 'malformed', 'stamp writers a string of the right length');
    refused(readRecord(Object.assign(ok(), { 9: [MEMBER] })), 'malformed', 'owner a list');
    refused(readRecord(Object.assign(ok(), { 7: [10, 3] })), 'refusedVersion', 'a stamp above the version');
    refused(readRecord(Object.assign(ok(), { 7: [9, -1] })), 'refusedVersion', 'a negative stamp');
    refused(readRecord(Object.assign(ok(), { 8: [MEMBER, 'w'.repeat(65)] })), 'malformed', 'writer');
    refused(readRecord(Object.assign(ok(), { 9: 'o'.repeat(65) })), 'malformed', 'owner');
  });
  it('accepts the write bases (appended; absent from older senders), each at most its stamp', () => {
    accepted(readRecord as (m: unknown[]) => unknown, [...ok(), [8, 0]]);
  });
  it('refuses bases one step out', () => {
    refused(readRecord([...ok(), 'x']), 'malformed', 'bases not a list');
    refused(readRecord([...ok(), [8]]), 'malformed', 'too few bases');
    refused(readRecord([...ok(), [8, 0, 0]]), 'malformed', 'too many bases');
    refused(readRecord([...ok(), [10, 0]]), 'refusedVersion', 'a base above its stamp');
    refused(readRecord([...ok(), [8, -1]]), 'refusedVersion', 'a negative base');
    refused(readRecord([...ok(), [8, 0.5]]), 'refusedVersion', 'a fractional base');
  });
});

describe('values and tombstones', () => {
  it('receivedValues: null is a removal only where removals are allowed; anything else must be bytes', () => {
    const [v, gone] = receivedValues([encode('x'), null], true);
    assert.equal(v!.value, 'x');
    assert.equal(gone, null);
    assert.throws(() => receivedValues([null], false), /not bytes/);
    assert.throws(() => receivedValues(['x'], true), /not bytes/);
  });
  it('readTombstones: keeps session ids, counts anything else', () => {
    let bad = 0;
    assert.deepEqual(
      readTombstones([ID, 'x', 5, ID2], () => bad++),
      [ID, ID2],
    );
    assert.equal(bad, 2);
    assert.deepEqual(
      readTombstones('x', () => bad++),
      [],
    );
    assert.equal(bad, 2);
  });
});
