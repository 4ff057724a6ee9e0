/**
 * The readers of the BackupManager's rejoin and repair messages (HOLDING, MERGE_COPIES, WANTED), on
 * hostile input: what the builders make passes; anything else is a Refused naming its counter
 * (malformed, malformedIds), never an exception; lists are bounded (MAX_CHUNK). And the
 * sessions.repairIntervalMs / sessions.stopHandOverMs keys: defaults, and errors naming the key.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { resolveSessionConfig } from '../../../src/config/session-config.js';
import { ConfigError } from '../../../src/core/errors.js';
import { MAX_CHUNK } from '../../../src/session/backup-messages.js';
import {
  holdingMsg,
  mergeCopiesMsg,
  Purpose,
  readHolding,
  readMergeCopies,
  readWanted,
  wantedMsg,
} from '../../../src/session/backup-sync-messages.js';
import { Refused } from '../../../src/session/message-readers.js';
import { Msg } from '../../../src/session/messages.js';
import { fuzzRuns } from '../../helpers/fuzz.js';

const ID = '0123456789ABCDEF0123456789ABCDEF';
const OWNER = 'a'.repeat(32);
const counterOf = (r: unknown) => (r instanceof Refused ? r.counter : 'accepted');
const raw = (m: unknown) => m as unknown[];

describe('rejoin and repair message readers', () => {
  it('accept what the builders make', () => {
    const record = [ID, 1, 2, 1800, 3, [], [], [], [], OWNER] as never;
    assert.equal(counterOf(readHolding(raw(holdingMsg('/app', Purpose.REJOIN, [ID], [3], [OWNER])))), 'accepted');
    assert.equal(counterOf(readHolding(raw(holdingMsg('/app', Purpose.REPAIR, [ID], [0], [''])))), 'accepted');
    assert.equal(counterOf(readMergeCopies(raw(mergeCopiesMsg('/app', [record], [ID])))), 'accepted');
    assert.equal(counterOf(readMergeCopies(raw(mergeCopiesMsg('/app', [], [])))), 'accepted');
    assert.equal(counterOf(readWanted(raw(wantedMsg('/app', [ID])))), 'accepted');
  });

  it('refuse bad ids, versions, owners, purposes and shapes with the right counter', () => {
    const h = (purpose: unknown, ids: unknown, versions: unknown, owners: unknown) =>
      counterOf(readHolding([Msg.HOLDING, '/app', purpose, ids, versions, owners]));
    assert.equal(h(2, [ID], [1], [OWNER]), 'malformed');
    assert.equal(h(0, [], [], []), 'malformed');
    assert.equal(h(0, [ID], [1, 2], [OWNER]), 'malformed');
    assert.equal(h(0, [ID], [-1], [OWNER]), 'malformed');
    assert.equal(h(0, [ID], [1.5], [OWNER]), 'malformed');
    assert.equal(h(0, [ID], [1], ['x'.repeat(65)]), 'malformedIds');
    assert.equal(h(0, [ID], [1], [7]), 'malformedIds');
    assert.equal(h(0, ['../etc'], [1], [OWNER]), 'malformedIds');
    const many = Array.from({ length: MAX_CHUNK + 1 }, () => ID);
    assert.equal(
      h(
        0,
        many,
        many.map(() => 1),
        many.map(() => OWNER),
      ),
      'malformed',
    );
    assert.equal(counterOf(readMergeCopies([Msg.MERGE_COPIES, '/app', {}, []])), 'malformed');
    assert.equal(counterOf(readMergeCopies([Msg.MERGE_COPIES, '/app', [], ['bad id']])), 'malformedIds');
    assert.equal(counterOf(readMergeCopies([Msg.MERGE_COPIES, '/app', many, []])), 'malformed');
    assert.equal(counterOf(readWanted([Msg.WANTED, '/app', []])), 'malformedIds');
    assert.equal(counterOf(readWanted([Msg.WANTED, '/app', [ID], 1])), 'malformed');
    assert.equal(counterOf(readWanted([Msg.WANTED, '/app', many])), 'malformedIds');
  });

  it('never throw on anything', () => {
    fc.assert(
      fc.property(fc.array(fc.anything(), { maxLength: 8 }), (tail) => {
        for (const t of [Msg.HOLDING, Msg.MERGE_COPIES, Msg.WANTED]) {
          const m = [t, '/app', ...tail];
          for (const read of [readHolding, readMergeCopies, readWanted]) read(m);
        }
      }),
      fuzzRuns(200),
    );
  });
});

describe('sessions.repairIntervalMs and sessions.stopHandOverMs', () => {
  it('default to 30 s and 5 s; 0 turns them off', () => {
    const c = resolveSessionConfig({});
    assert.equal(c.repairIntervalMs, 30_000);
    assert.equal(c.stopHandOverMs, 5000);
    const off = resolveSessionConfig({ repairIntervalMs: 0, stopHandOverMs: 0 });
    assert.equal(off.repairIntervalMs, 0);
    assert.equal(off.stopHandOverMs, 0);
  });

  it('bad values name the key', () => {
    for (const [key, bad] of [
      ['repairIntervalMs', 50],
      ['repairIntervalMs', -1],
      ['repairIntervalMs', '1000'],
      ['stopHandOverMs', -1],
      ['stopHandOverMs', 600_001],
      ['stopHandOverMs', 1.5],
    ] as const) {
      assert.throws(
        () => resolveSessionConfig({ [key]: bad } as never, 'apps.0.sessions'),
        (e: unknown) => e instanceof ConfigError && e.key === `apps.0.sessions.${key}`,
        `${key} = ${String(bad)}`,
      );
    }
  });
});
