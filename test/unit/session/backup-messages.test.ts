/**
 * The BackupManager's message readers, on hostile input: well-formed messages pass as they are;
 * anything else is a Refused naming its counter (malformed, malformedIds), never an exception, and
 * chunks are bounded (MAX_CHUNK).
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  copiesMsg,
  fetchedMsg,
  fetchMsg,
  MAX_CHUNK,
  movedMsg,
  readCopies,
  readFetch,
  readFetched,
  readRelease,
  readShareSent,
  releaseMsg,
  shareSentMsg,
} from '../../../src/session/backup-messages.js';
import { Refused } from '../../../src/session/message-readers.js';
import { Msg } from '../../../src/session/messages.js';
import { fuzzRuns } from '../../helpers/fuzz.js';

const ID = '0123456789ABCDEF0123456789ABCDEF';
const counterOf = (r: unknown) => (r instanceof Refused ? r.counter : 'accepted');

describe('backup message readers', () => {
  it('accept what the builders make', () => {
    const record = [ID, 1, 2, 1800, 3, [], [], [], [], 'a'.repeat(32)] as never;
    assert.equal(counterOf(readFetch(fetchMsg('/app', ID, 7) as unknown as unknown[])), 'accepted');
    assert.equal(counterOf(readFetched(fetchedMsg('/app', 7, record) as unknown as unknown[])), 'accepted');
    assert.equal(counterOf(readFetched(fetchedMsg('/app', 7, null) as unknown as unknown[])), 'accepted');
    assert.equal(counterOf(readCopies(copiesMsg('/app', [record]) as unknown as unknown[])), 'accepted');
    assert.equal(counterOf(readRelease(releaseMsg('/app', [ID], [4]) as unknown as unknown[])), 'accepted');
    assert.equal(counterOf(readShareSent(shareSentMsg('/app') as unknown as unknown[])), 'accepted');
  });

  it('refuse bad ids, request ids, versions and shapes with the right counter', () => {
    assert.equal(counterOf(readFetch([Msg.FETCH, '/app', 'not-an-id', 1])), 'malformedIds');
    assert.equal(counterOf(readFetch([Msg.FETCH, '/app', `${ID.slice(1)}.`, 1])), 'malformedIds');
    assert.equal(counterOf(readFetch([Msg.FETCH, '/app', 42, 1])), 'malformedIds');
    for (const rid of [-1, 1.5, '1', null, 2 ** 60])
      assert.equal(counterOf(readFetch([Msg.FETCH, '/app', ID, rid])), 'malformed');
    assert.equal(counterOf(readFetch([Msg.FETCH, '/app', ID, 1, 'extra'])), 'malformed');
    assert.equal(counterOf(readFetch(fetchMsg('/app', ID, 1, true) as unknown as unknown[])), 'accepted');
    assert.equal(counterOf(readFetch(fetchMsg('/app', ID, 1, 'take') as unknown as unknown[])), 'accepted');
    for (const mode of ['grab', false, 1, null])
      assert.equal(counterOf(readFetch([Msg.FETCH, '/app', ID, 1, mode])), 'malformed');
    const rec = [ID, 1, 2, 1800, 3, [], [], [], [], 'a'.repeat(32)] as never;
    assert.equal(counterOf(readFetched(fetchedMsg('/app', 1, rec, true) as unknown as unknown[])), 'accepted');
    assert.equal((fetchedMsg('/app', 1, null, true) as unknown as unknown[]).length, 4, 'no grant without a record');
    assert.equal(counterOf(readFetched([Msg.FETCHED, '/app', 1, null, true])), 'malformed');
    assert.equal(counterOf(readFetched([Msg.FETCHED, '/app', 1, rec, 'yes'])), 'malformed');
    assert.equal(counterOf(readFetched([Msg.FETCHED, '/app', 1, rec, true, 1])), 'malformed');
    assert.equal(counterOf(readFetched([Msg.FETCHED, '/app', 1, 'record'])), 'malformed');
    assert.equal(counterOf(readFetched([Msg.FETCHED, '/app', -3, null])), 'malformed');
    assert.equal(counterOf(readCopies([Msg.COPIES, '/app', []])), 'malformed');
    assert.equal(counterOf(readCopies([Msg.COPIES, '/app', new Array(MAX_CHUNK + 1).fill([])])), 'malformed');
    assert.equal(counterOf(readCopies([Msg.COPIES, '/app', 'x'])), 'malformed');
    assert.equal(counterOf(readRelease([Msg.RELEASE, '/app', [ID], []])), 'malformed');
    assert.equal(counterOf(readRelease([Msg.RELEASE, '/app', [ID], [-1]])), 'malformed');
    assert.equal(counterOf(readRelease([Msg.RELEASE, '/app', [ID], [0.5]])), 'malformed');
    assert.equal(counterOf(readRelease([Msg.RELEASE, '/app', ['x'], [1]])), 'malformedIds');
    assert.equal(counterOf(readRelease([Msg.RELEASE, '/app', [], []])), 'malformed');
    assert.equal(counterOf(readRelease([Msg.RELEASE, '/app', [ID]])), 'malformed');
    assert.equal(counterOf(readShareSent([Msg.SHARE_SENT, '/app', 'more'])), 'malformed');
  });

  it('a hinted fetch and a "moved to" answer: accepted as built, refused when malformed', () => {
    for (const mode of [undefined, true, 'take'] as const) {
      const m = fetchMsg('/app', ID, 1, mode, true) as unknown as unknown[];
      assert.deepEqual([m.length, m[5], counterOf(readFetch(m))], [6, true, 'accepted']);
    }
    assert.equal((fetchMsg('/app', ID, 1, 'take') as unknown as unknown[]).length, 5, 'not hinted: no sixth element');
    for (const bad of [
      [Msg.FETCH, '/app', ID, 1, 'take', false],
      [Msg.FETCH, '/app', ID, 1, 'grab', true],
      [Msg.FETCH, '/app', ID, 1, null, true, 1],
    ])
      assert.equal(counterOf(readFetch(bad)), 'malformed', JSON.stringify(bad));
    const moved = movedMsg('/app', 1, 'b'.repeat(32)) as unknown as unknown[];
    assert.deepEqual([moved[3], moved[4], counterOf(readFetched(moved))], [null, 'b'.repeat(32), 'accepted']);
    const rec = [ID, 1, 2, 1800, 3, [], [], [], [], 'a'.repeat(32)];
    for (const bad of [
      [Msg.FETCHED, '/app', 1, null, ''],
      [Msg.FETCHED, '/app', 1, null, 'x'.repeat(65)],
      [Msg.FETCHED, '/app', 1, null, 7],
      [Msg.FETCHED, '/app', 1, rec, 'b'.repeat(32)],
    ])
      assert.equal(counterOf(readFetched(bad)), 'malformed', JSON.stringify(bad).slice(0, 60));
  });

  it('never throw on arbitrary input', () => {
    const readers = [readFetch, readFetched, readCopies, readRelease, readShareSent];
    fc.assert(
      fc.property(fc.array(fc.anything(), { maxLength: 6 }), (m) => {
        for (const read of readers) {
          const r = read(m);
          assert.ok(r instanceof Refused || Array.isArray(r));
        }
      }),
      fuzzRuns(),
    );
  });
});
