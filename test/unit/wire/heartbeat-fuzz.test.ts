/**
 * Property-based fuzzing of the heartbeat datagram and the member descriptor (src/wire/heartbeat.ts,
 * src/wire/member.ts): valid ones round-trip, and arbitrary or mutated bytes are either decoded or
 * refused with FrameError (or ProtocolVersionError for versions this build does not speak) —
 * nothing else is ever thrown. With a cluster key, any change to a
 * datagram is refused. Short by default; CLOWDER_FUZZ_RUNS=N for a long run.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FrameError, ProtocolVersionError } from '../../../src/core/errors.js';
import { ClusterKeys } from '../../../src/wire/auth.js';
import { decodeHeartbeat, encodeHeartbeat, HeartbeatKind } from '../../../src/wire/heartbeat.js';
import {
  decodeMember,
  encodeMember,
  type MemberDescriptor,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
} from '../../../src/wire/member.js';
import { fuzzRuns } from '../../helpers/fuzz.js';

const WINDOW = 30_000;
const KEYS = new ClusterKeys('correct-horse-battery-staple-cluster-key-0001');
const OTHER_KEYS = new ClusterKeys('wrong-horse-battery-staple-cluster-key-00002');

/** Runs `decode`: it may return, or throw FrameError (the documented refusal); anything else fails. */
function decodesOrRefuses(decode: () => unknown): 'decoded' | 'refused' {
  try {
    decode();
    return 'decoded';
  } catch (err) {
    if (err instanceof FrameError || err instanceof ProtocolVersionError) return 'refused';
    throw err;
  }
}

const text = (minLength: number) =>
  fc.string({ unit: 'grapheme', minLength, maxLength: 24 }).filter((s) => Buffer.byteLength(s) <= 255);

const descriptor: fc.Arbitrary<MemberDescriptor> = fc.record({
  id: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('hex')),
  // A range this build shares: its newest at or above ours, its oldest at or below ours.
  protocolVersion: fc.integer({ min: PROTOCOL_VERSION, max: 255 }),
  minProtocolVersion: fc.integer({ min: 0, max: MIN_PROTOCOL_VERSION }),
  host: text(1),
  port: fc.integer({ min: 1, max: 65535 }),
  name: text(1),
  domain: text(0),
  startTime: fc.double({ noNaN: true, noDefaultInfinity: true }),
  payload: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 4000, maxLength: 4096 })),
});

const kind = fc.constantFrom(HeartbeatKind.ALIVE, HeartbeatKind.LEAVING);
const seq = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
/** No key, a key authenticating only, a key with encryption. */
const auth = fc.constantFrom(
  { keys: undefined, encrypt: false },
  { keys: KEYS, encrypt: false },
  { keys: KEYS, encrypt: true },
);

/** Changes to a datagram: bytes set, a cut, bytes appended. */
const mutation = fc.oneof(
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(datagram: Buffer, mutations: readonly Mutation[]): Buffer {
  let out = Buffer.from(datagram);
  for (const m of mutations) {
    if (m.op === 'set' && out.length > 0) out[m.at % out.length] = m.value;
    else if (m.op === 'cut') out = out.subarray(0, m.at % (out.length + 1));
    else if (m.op === 'append') out = Buffer.concat([out, m.bytes]);
  }
  return out;
}

const same = (m: MemberDescriptor) => ({ ...m, payload: Buffer.from(m.payload) });

describe('heartbeat and member descriptor fuzzing', () => {
  it('a valid member descriptor round-trips', () => {
    fc.assert(
      fc.property(descriptor, (m) => {
        assert.deepEqual(same(decodeMember(encodeMember(m))), same(m));
      }),
      fuzzRuns(),
    );
  });

  it('a valid heartbeat round-trips, with and without a key', () => {
    fc.assert(
      fc.property(descriptor, kind, seq, auth, (m, k, s, { keys, encrypt }) => {
        const hb = decodeHeartbeat(encodeHeartbeat(k, s, encodeMember(m), keys, encrypt), keys, WINDOW, encrypt);
        assert.equal(hb.kind, k);
        assert.equal(hb.seq, s);
        assert.ok(Math.abs(hb.timestamp - Date.now()) < WINDOW);
        assert.deepEqual(same(hb.member), same(m));
      }),
      fuzzRuns(),
    );
  });

  it('arbitrary bytes are decoded or refused with FrameError, never anything else', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 600 }),
      // Past the magic and version, so the rest of the parser is reached.
      fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.concat([Buffer.from('CLHB\x01'), b])),
    );
    fc.assert(
      fc.property(bytes, auth, (b, { keys, encrypt }) => {
        const buf = Buffer.from(b);
        decodesOrRefuses(() => decodeHeartbeat(buf, keys, WINDOW, encrypt));
        decodesOrRefuses(() => decodeMember(buf));
      }),
      fuzzRuns(),
    );
  });

  it('a mutated heartbeat is decoded or refused with FrameError; with a key, any change is refused', () => {
    fc.assert(
      fc.property(
        descriptor,
        kind,
        seq,
        auth,
        fc.array(mutation, { minLength: 1, maxLength: 6 }),
        (m, k, s, { keys, encrypt }, mutations) => {
          const valid = encodeHeartbeat(k, s, encodeMember(m), keys, encrypt);
          const bad = mutate(valid, mutations);
          const result = decodesOrRefuses(() => decodeHeartbeat(bad, keys, WINDOW, encrypt));
          if (keys !== undefined && !bad.equals(valid)) assert.equal(result, 'refused');
        },
      ),
      fuzzRuns(),
    );
  });

  it('a heartbeat under another key, or another encrypt setting, is refused', () => {
    fc.assert(
      fc.property(descriptor, kind, seq, fc.boolean(), (m, k, s, encrypt) => {
        const hb = encodeHeartbeat(k, s, encodeMember(m), OTHER_KEYS, encrypt);
        assert.equal(
          decodesOrRefuses(() => decodeHeartbeat(hb, KEYS, WINDOW, encrypt)),
          'refused',
        );
        const mine = encodeHeartbeat(k, s, encodeMember(m), KEYS, encrypt);
        assert.equal(
          decodesOrRefuses(() => decodeHeartbeat(mine, KEYS, WINDOW, !encrypt)),
          'refused',
        );
      }),
      fuzzRuns(),
    );
  });
});
