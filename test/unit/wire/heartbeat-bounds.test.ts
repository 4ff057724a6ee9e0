// Heartbeat refusals at their exact bounds (found by mutation testing: npm run mutation -- wire).
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { FrameError } from '../../../src/core/errors.js';
import { ClusterKeys } from '../../../src/wire/auth.js';
import { decodeHeartbeat, encodeHeartbeat, HeartbeatKind } from '../../../src/wire/heartbeat.js';
import { encodeMember, PROTOCOL_VERSION } from '../../../src/wire/member.js';

const keys = new ClusterKeys('a-cluster-key-of-at-least-32-characters!');
const WINDOW = 30_000;
const desc = encodeMember({
  id: randomBytes(16).toString('hex'),
  protocolVersion: PROTOCOL_VERSION,
  host: '127.0.0.1',
  port: 4000,
  name: 'node-1',
  domain: 'shop',
  startTime: 1_700_000_000_123,
  payload: new Uint8Array([1, 2, 3]),
});

/** Runs `fn` with Date.now() fixed at `at`. */
function at<T>(now: number, fn: () => T): T {
  const real = Date.now;
  Date.now = () => now;
  try {
    return fn();
  } finally {
    Date.now = real;
  }
}

function refused(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof FrameError && pattern.test(err.message));
}

describe('heartbeat bounds', () => {
  it('the replay window includes its edges: exactly replayWindowMs old or ahead is taken, 1 ms more is not', () => {
    const sent = 1_800_000_000_000;
    const hb = at(sent, () => encodeHeartbeat(HeartbeatKind.ALIVE, 1n, desc, keys));
    assert.equal(at(sent + WINDOW, () => decodeHeartbeat(hb, keys, WINDOW)).timestamp, sent);
    assert.equal(at(sent - WINDOW, () => decodeHeartbeat(hb, keys, WINDOW)).timestamp, sent);
    refused(() => at(sent + WINDOW + 1, () => decodeHeartbeat(hb, keys, WINDOW)), /replay window of 30000 ms/);
    refused(() => at(sent - WINDOW - 1, () => decodeHeartbeat(hb, keys, WINDOW)), /replay window/);
  });

  it('an unauthenticated heartbeat with a byte more or less than its descriptor is refused', () => {
    const clear = encodeHeartbeat(HeartbeatKind.ALIVE, 7n, desc, undefined);
    refused(() => decodeHeartbeat(Buffer.concat([clear, Buffer.from([0])]), undefined, WINDOW), /length mismatch/);
    refused(() => decodeHeartbeat(clear.subarray(0, clear.length - 1), undefined, WINDOW), /length mismatch/);
  });

  it('a keyed heartbeat whose encrypt setting differs from this node is refused, saying so', () => {
    const encrypted = encodeHeartbeat(HeartbeatKind.ALIVE, 1n, desc, keys, true);
    assert.equal(decodeHeartbeat(encrypted, keys, WINDOW, true).seq, 1n);
    refused(() => decodeHeartbeat(encrypted, keys, WINDOW, false), /encrypt setting differs .*\(false\)/);
    const plain = encodeHeartbeat(HeartbeatKind.ALIVE, 1n, desc, keys, false);
    refused(() => decodeHeartbeat(plain, keys, WINDOW, true), /encrypt setting differs .*\(true\)/);
  });
});
