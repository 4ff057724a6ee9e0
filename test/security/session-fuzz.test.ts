/**
 * Property-based fuzzing of every session-message reader, through the manager's own handler
 * (DeltaManager.receive) with an in-memory hub instead of sockets: arbitrary and mutated messages
 * of each type never throw out of the handler, never change a session unless the message is valid
 * and authorized, and are counted as malformed or refused. A short run in `npm test`;
 * `CLOWDER_FUZZ_RUNS=100000` for a long one (test/helpers/fuzz.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { Member } from '../../src/channel/types.js';
import { resolveSessionConfig } from '../../src/config/session-config.js';
import { silentLogger } from '../../src/core/logger.js';
import { encode } from '../../src/index.js';
import { DeltaManager } from '../../src/session/delta-manager.js';
import { isSessionId } from '../../src/session/ids.js';
import { VERSION_LIMIT } from '../../src/session/message-readers.js';
import { MSG_TYPES, Msg } from '../../src/session/messages.js';
import type { ReplicationHub } from '../../src/session/replication-hub.js';
import type { Session } from '../../src/session/session.js';
import { fuzzRuns } from '../helpers/fuzz.js';

const MAX_REPLICAS = 50;

function member(name: string): Member {
  const id = randomBytes(16).toString('hex');
  return { id, name, host: '127.0.0.1', port: 9, domain: 'd', startTime: 1, protocolVersion: 1, payload: undefined };
}

function freshId(): string {
  return randomBytes(16).toString('hex').toUpperCase();
}

/**
 * A manager on an in-memory hub, with: a session created here (local), a copy of one the peer
 * created and owns (replica), a repair it asked the peer for (unknownId), and an ownership request
 * it sent the peer (requestId) for the replica.
 */
interface Harness {
  m: DeltaManager;
  peer: Member;
  other: Member;
  local: Session;
  replica: Session;
  unknownId: string;
  requestId: number;
  /** Messages the manager sent, with their destinations. */
  sent: { to: Member[]; message: unknown[] }[];
  /** Makes the manager ask the peer for a session it does not hold (a repair); returns its id. */
  ask(): string;
  /** Ends the sessions made by ask() (the peer expires them), so that the replica bound is not reached. */
  settle(): void;
  stop(): Promise<void>;
}

async function harness(): Promise<Harness> {
  const peer = member('peer');
  const other = member('other');
  const members: Member[] = [];
  const sent: Harness['sent'] = [];
  const record = (to: Member | readonly Member[], message: unknown) =>
    sent.push({ to: Array.isArray(to) ? [...to] : [to as Member], message: message as unknown[] });
  const localMember = member('local');
  const hub = {
    channel: {
      local: localMember,
      config: { name: 'local', maxMessageBytes: 16 * 1024 * 1024, sender: { timeoutMs: 600_000 } },
      post: (to: Member | readonly Member[], message: unknown) => record(to, message),
      send: async (to: Member | readonly Member[], message: unknown) => {
        record(to, message);
      },
    },
    register() {},
    unregister() {},
    membersFor: () => members,
    queueTurn() {},
    turnWritten: () => Promise.resolve(),
    inputHandled: () => Promise.resolve(),
  } as unknown as ReplicationHub;
  const config = resolveSessionConfig({
    contextPath: '/app',
    maxReplicaSessions: MAX_REPLICAS,
    ownershipTimeoutMs: 600_000,
  });
  const m = new DeltaManager(config, hub, silentLogger);
  await m.start(); // alone: nothing to transfer
  members.push(peer, other);
  const local = m.createSession();
  local.setAttribute('k', 'local');
  m.replicate(local);
  const replicaId = freshId();
  const now = Date.now();
  m.receive([Msg.CREATED, '/app', replicaId, now, 1800, 3, ['k', 'obj'], [encode('r'), encode({ a: [1] })]], peer);
  const replica = m.sessions.get(replicaId)!;
  replica.lastAccessedTime -= 10_000; // so that a valid ACCESSED visibly moves it
  const unknownId = freshId();
  m.receive([Msg.DELTA, '/app', unknownId, 1, 2, ['k'], [encode('u')], [], null], peer);
  const acquired = m.acquire(replica);
  const ask = sent.find((x) => x.message[0] === Msg.ACQUIRE)!.message;
  assert.ok(acquired && replica.ownerId === peer.id && m.sessions.has(unknownId));
  const asked: string[] = [];
  return {
    m,
    peer,
    other,
    local,
    replica,
    unknownId,
    requestId: ask[3] as number,
    sent,
    ask() {
      const id = freshId();
      m.receive([Msg.DELTA, '/app', id, 1, 2, ['k'], [encode('u')], [], null], peer);
      asked.push(id);
      return id;
    },
    settle() {
      for (const id of asked.splice(0)) m.receive([Msg.EXPIRED, '/app', id, 'expired'], peer);
    },
    async stop() {
      // The legitimate answer ends the wait (its timer), then the manager stops.
      m.receive([Msg.GRANT, '/app', replicaId, ask[3], localMember.id, true], peer);
      await acquired;
      await m.stop();
    },
  };
}

/** Everything a message could change, as text. */
function snapshot(m: DeltaManager): string {
  const out: unknown[] = [m.stats().tombstones, m.stats().replicaSessions];
  for (const [key, s] of m.sessions) {
    const attrs: unknown[] = [];
    s.attributes.forEach((a, name) => {
      attrs.push([name, a.v, a.w, a.b, a.removed, a.bytes?.toString('hex'), a.decoded ? String(a.value) : '']);
    });
    out.push([key, s.id, s.version, s.ownerId, s.primary, s.valid, s.maxInactiveInterval, s.lastAccessedTime, attrs]);
  }
  return JSON.stringify(out);
}

const REFUSALS = [
  'malformed',
  'malformedIds',
  'refusedSessionData',
  'refusedGrant',
  'refusedExpired',
  'refusedIdChanges',
  'refusedVersion',
  'refusedReplicaLimit',
  'refusedStateRequests',
];

/** Refusals and malformed messages counted so far. */
function refusals(m: DeltaManager): number {
  const stats = m.stats() as unknown as Record<string, number>;
  let n = 0;
  for (const k of REFUSALS) n += stats[k]!;
  return n;
}

/** What must hold after any input. */
function checkInvariants(h: Harness): void {
  const { m } = h;
  let replicas = 0;
  for (const [key, s] of m.sessions) {
    assert.equal(key, s.id);
    assert.ok(isSessionId(key), `a well-formed id (${key.slice(0, 40)})`);
    assert.ok(
      Number.isSafeInteger(s.version) && s.version >= 0 && s.version <= VERSION_LIMIT + 100,
      `version ${s.version}`,
    );
    s.attributes.forEach((a) => {
      assert.ok(a.v <= s.version, 'no stamp above the version');
    });
    if (s !== h.local) replicas++;
  }
  assert.ok(replicas <= MAX_REPLICAS);
}

/** Delivers `message` from `from`; it must not throw (a returned promise must not reject). */
async function deliver(h: Harness, message: unknown[], from: Member): Promise<void> {
  const r = h.m.receive(message, from);
  if (r instanceof Promise) await r;
}

/** A valid message of each type a member sends, about the harness's sessions, and its sender. */
interface Template {
  name: string;
  build(h: Harness): unknown[];
  /** Fields that the readers require (the message cut before any of them is malformed). */
  required: number;
  /** Per field index: values that make the message invalid there. */
  invalid: Record<number, fc.Arbitrary<unknown>>;
  /** Authorization: the member that may send it (default the peer). */
  from?: (h: Harness) => Member;
}

const notString = fc.anything().filter((v) => typeof v !== 'string');
const badId = fc.oneof(
  notString,
  fc.string({ maxLength: 80 }).filter((s) => !isSessionId(s)),
  fc.constantFrom('+'.repeat(32), 'A/'.repeat(16), 'A'.repeat(33), `${'A'.repeat(32)}.r`, 'A'.repeat(4096)),
);
const badVersion = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      2 ** 53,
      Number.MAX_SAFE_INTEGER,
      VERSION_LIMIT + 1,
      -1,
      1.5,
      Number.NaN,
      Infinity,
      1e300,
    ),
  },
  { weight: 1, arbitrary: fc.anything().filter((v) => typeof v !== 'number') },
);
const badNumber = fc.oneof(
  fc.constantFrom(Number.NaN, Infinity, -Infinity),
  fc.anything().filter((v) => typeof v !== 'number'),
);
const badInterval = fc.oneof(fc.constantFrom(1.5, Number.NaN, Infinity, 2 ** 60), notNumberOrNull());
const notArray = fc.anything().filter((v) => !Array.isArray(v));
const badNames = fc.oneof(
  notArray,
  fc.array(fc.anything(), { minLength: 1 }).filter((a) => a.some((x) => typeof x !== 'string')),
);
/** Values that are not encodings (or a list of the wrong length). */
const badValues = fc.oneof(
  notArray,
  fc.constant([]),
  fc
    .anything()
    .filter((v) => v !== null && !(v instanceof Uint8Array))
    .map((v) => [v]),
);
const badBoolean = fc.anything().filter((v) => typeof v !== 'boolean');

function notNumberOrNull(): fc.Arbitrary<unknown> {
  return fc.anything().filter((v) => typeof v !== 'number' && v !== null);
}

function record(h: Harness, id: string, version: number): unknown[] {
  const now = Date.now();
  return [id, now, now, 1800, version, ['k'], [encode('data')], [version], [h.peer.id], h.peer.id];
}

const TEMPLATES: Template[] = [
  {
    name: 'created (a new session)',
    build: () => [Msg.CREATED, '/app', freshId(), Date.now(), 1800, 1, ['k'], [encode(1)]],
    required: 8,
    invalid: { 2: badId, 3: badNumber, 4: badInterval, 5: badVersion, 6: badNames, 7: badValues },
  },
  {
    name: 'created (the replica again)',
    build: (h) => [Msg.CREATED, '/app', h.replica.id, 1, 1800, h.replica.version + 1, ['k'], [encode(2)]],
    required: 8,
    invalid: { 2: badId, 3: badNumber, 4: badInterval, 5: badVersion, 6: badNames, 7: badValues },
  },
  {
    name: 'delta',
    build: (h) => [
      Msg.DELTA,
      '/app',
      h.replica.id,
      h.replica.version,
      h.replica.version + 1,
      ['k'],
      [encode('d')],
      ['obj'],
      60,
    ],
    required: 9,
    invalid: {
      2: badId,
      3: fc.oneof(badVersion, fc.constant(10 ** 6)),
      4: badVersion,
      5: badNames,
      6: badValues,
      7: badNames,
      8: badInterval,
    },
  },
  {
    name: 'accessed',
    build: (h) => [Msg.ACCESSED, '/app', h.replica.id, Date.now(), false],
    required: 4,
    invalid: { 2: badId, 3: badNumber, 4: badBoolean.filter((v) => v !== undefined) },
  },
  {
    name: 'expired',
    build: (h) => [Msg.EXPIRED, '/app', h.replica.id, 'invalidated'],
    required: 3,
    invalid: { 2: badId },
  },
  {
    name: 'id changed',
    build: (h) => [Msg.ID_CHANGED, '/app', h.replica.id, freshId()],
    required: 4,
    invalid: { 2: badId, 3: badId },
  },
  {
    name: 'acquire',
    build: (h) => [Msg.ACQUIRE, '/app', h.local.id, 42],
    required: 4,
    invalid: { 2: badId, 3: fc.oneof(badNumber, fc.constantFrom(-1, 1.5, 2 ** 60)) },
  },
  {
    name: 'grant',
    build: (h) => [Msg.GRANT, '/app', h.replica.id, h.requestId, h.m.localId, true],
    required: 6,
    invalid: {
      2: fc.oneof(badId, fc.constant('F'.repeat(32))),
      3: fc.oneof(badNumber, fc.integer({ min: 0, max: 2 ** 48 })),
      4: fc.oneof(notString, fc.constant('w'.repeat(65))),
      5: badBoolean,
    },
  },
  {
    name: 'taken (a forced take-over that fences another member)',
    build: (h) => {
      const fence = h.replica.version + 2 ** 20;
      return [Msg.TAKEN, '/app', h.replica.id, h.other.id, fence, record(h, h.replica.id, fence)];
    },
    required: 6,
    invalid: {
      2: fc.oneof(badId, fc.constant('F'.repeat(32))),
      3: fc.oneof(notString, fc.constant('w'.repeat(65))),
      4: badVersion,
      5: notArray,
    },
  },
  {
    name: 'session data',
    build: (h) => [Msg.SESSION_DATA, '/app', record(h, h.ask(), 5)],
    required: 3,
    invalid: { 2: notArray },
  },
  {
    name: 'batch',
    build: (h) => [
      Msg.BATCH,
      '/app',
      [[Msg.DELTA, '/app', h.replica.id, h.replica.version, h.replica.version + 1, ['k'], [encode('b')], [], null]],
    ],
    required: 3,
    invalid: { 2: fc.oneof(notArray, fc.constant([]), fc.array(notArray, { minLength: 1, maxLength: 3 })) },
  },
];

/** Session records with one field made invalid (SESSION_DATA answers and state-transfer chunks). */
const RECORD_INVALID: Record<number, fc.Arbitrary<unknown>> = {
  0: badId,
  1: badNumber,
  2: badNumber,
  3: badInterval,
  4: badVersion,
  5: badNames,
  6: badValues,
  7: fc.oneof(notArray, fc.constant([]), fc.constant([10 ** 6])),
  8: fc.oneof(notArray, fc.constant([]), fc.constant([7]), fc.constant(['w'.repeat(65)])),
  9: fc.oneof(notString, fc.constant('w'.repeat(65))),
};

const TYPES = Object.values(Msg) as number[];

describe('session message readers under fuzzing', () => {
  test('the valid templates are taken (the properties below are not vacuous)', async () => {
    for (const t of TEMPLATES) {
      const h = await harness();
      try {
        const before = snapshot(h.m);
        const counted = refusals(h.m);
        await deliver(h, t.build(h), t.from?.(h) ?? h.peer);
        assert.equal(refusals(h.m), counted, `${t.name}: not refused`);
        if (t.name !== 'acquire') assert.notEqual(snapshot(h.m), before, `${t.name}: applied`);
        else assert.equal(h.local.ownerId, h.peer.id, 'acquire: handed over');
      } finally {
        await h.stop();
      }
    }
  });

  test('arbitrary messages of every type never throw, change nothing and are counted', async () => {
    const h = await harness();
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...TYPES, 0, MSG_TYPES, -1, 1.5),
          fc.array(fc.anything(), { maxLength: 10 }),
          fc.boolean(),
          async (type, rest, fromPeer) => {
            const before = snapshot(h.m);
            const counted = refusals(h.m);
            await deliver(h, [type, '/app', ...rest], fromPeer ? h.peer : h.other);
            assert.equal(snapshot(h.m), before, 'nothing changed');
            // A state request is any member's right (answered, not counted); the rest is refused.
            if (type !== Msg.STATE_REQUEST) assert.ok(refusals(h.m) > counted, 'counted');
            checkInvariants(h);
          },
        ),
        fuzzRuns(300),
      );
    } finally {
      await h.stop();
    }
  });

  /** Each template, with one field made invalid or cut short: `mutate` changes a built message. */
  const invalidated = (t: Template): fc.Arbitrary<(m: unknown[]) => void> =>
    fc.oneof(
      fc
        .constantFrom(...Object.keys(t.invalid).map(Number))
        .chain((i) => t.invalid[i]!.map((v) => (m: unknown[]) => void m.splice(i, 1, v))),
      fc.integer({ min: 2, max: t.required - 1 }).map((n) => (m: unknown[]) => void m.splice(n)),
    );
  const sessionData = TEMPLATES.find((x) => x.name === 'session data')!;
  const cases: [string, Template, fc.Arbitrary<(m: unknown[]) => void>][] = [
    ...TEMPLATES.map((t): [string, Template, fc.Arbitrary<(m: unknown[]) => void>] => [t.name, t, invalidated(t)]),
    [
      'session data (a field of its record)',
      sessionData,
      fc
        .constantFrom(...Object.keys(RECORD_INVALID).map(Number))
        .chain((i) => RECORD_INVALID[i]!.map((v) => (m: unknown[]) => void (m[2] as unknown[]).splice(i, 1, v))),
    ],
  ];
  for (const [name, t, mutations] of cases) {
    test(`${name}, made invalid in one field or cut short, changes nothing and is counted`, async () => {
      const h = await harness();
      try {
        await fc.assert(
          fc.asyncProperty(mutations, async (mutate) => {
            const message = t.build(h);
            mutate(message);
            const before = snapshot(h.m);
            const counted = refusals(h.m);
            await deliver(h, message, h.peer);
            assert.equal(snapshot(h.m), before, 'nothing changed');
            assert.ok(refusals(h.m) > counted, 'counted');
            checkInvariants(h);
            h.settle();
          }),
          fuzzRuns(60),
        );
      } finally {
        await h.stop();
      }
    });
  }

  test('answers from a member that was not asked, or to no question, change nothing and are counted', async () => {
    const h = await harness();
    try {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 2 ** 48 }), async (kind, n) => {
          const messages: [unknown[], Member][] = [
            [[Msg.GRANT, '/app', h.replica.id, h.requestId, h.m.localId, true], h.other],
            [[Msg.GRANT, '/app', h.replica.id, n === h.requestId ? n + 1 : n, h.m.localId, true], h.peer],
            [[Msg.SESSION_DATA, '/app', record(h, h.unknownId, 5)], h.other],
            [[Msg.SESSION_DATA, '/app', record(h, freshId(), 5)], h.peer],
            [[Msg.STATE_CHUNK, '/app', `req-${n}`, 0, [record(h, freshId(), 5)]], h.peer],
            [[Msg.STATE_COMPLETE, '/app', `req-${n}`, 0, [h.replica.id]], h.peer],
          ];
          const [message, from] = messages[kind]!;
          const before = snapshot(h.m);
          const counted = refusals(h.m);
          await deliver(h, message, from);
          assert.equal(snapshot(h.m), before, 'nothing changed');
          assert.ok(refusals(h.m) > counted, 'counted');
        }),
        fuzzRuns(200),
      );
    } finally {
      await h.stop();
    }
  });

  test('any mutation of a valid message never throws and leaves the sessions well-formed', async () => {
    const h = await harness();
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...TEMPLATES),
          fc.integer({ min: 2, max: 9 }),
          fc.anything(),
          fc.boolean(),
          async (t, i, v, fromPeer) => {
            const message = t.build(h);
            message[i] = v;
            await deliver(h, message, fromPeer ? h.peer : h.other);
            checkInvariants(h);
            h.settle();
          },
        ),
        fuzzRuns(300),
      );
    } finally {
      await h.stop();
    }
  });
});
