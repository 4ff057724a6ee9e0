/**
 * The failure-detector interceptor against a scripted context (no sockets): which reason a member
 * confirmed dead is removed with, and when.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { failureDetector } from '../../../src/channel/interceptors/failure-detector.js';
import type { Interceptor, InterceptorContext, Member, RemoveReason } from '../../../src/channel/types.js';
import { silentLogger } from '../../../src/core/logger.js';
import { waitFor } from '../../helpers/wait.js';

const member: Member = {
  id: 'b'.repeat(32),
  name: 'b',
  host: '127.0.0.1',
  port: 4000,
  domain: '',
  startTime: 1,
  protocolVersion: 1,
  payload: undefined,
};

interface Script {
  /** What verify answers. */
  alive: boolean;
  /** Whether the member's own connection to us is open. */
  connected: boolean;
}

function harness(script: Script, verifyTimeoutMs = 5_000) {
  const removed: RemoveReason[] = [];
  const forgotten: string[] = [];
  let verifications = 0;
  const fd: Interceptor = failureDetector({
    type: 'failureDetector',
    verifyTimeoutMs,
    removeSuspectsTimeoutMs: 300_000,
  });
  const ctx = {
    logger: silentLogger,
    verify: async () => {
      verifications++;
      return script.alive;
    },
    connectedFrom: () => script.connected,
    forget: (m: Member) => forgotten.push(m.id),
    up: {
      receive: () => {},
      memberAdded: () => {},
      memberRemoved: (_m: Member, reason: RemoveReason) => removed.push(reason),
      memberSuspected: () => {},
    },
  } as unknown as InterceptorContext;
  fd.start?.(ctx);
  const settled = () => new Promise((r) => setImmediate(r));
  return { fd, removed, forgotten, settled, verifications: () => verifications };
}

describe('failure-detector interceptor', () => {
  test('a connection reset of a member that is sending its LEAVE is reported as a leave, not unreachable', async () => {
    // The leaver refused new connections first: our connection caught in its backlog reset and
    // the verification is refused, while its LEAVE is still on its way on its connection to us.
    const h = harness({ alive: false, connected: true });
    h.fd.memberSuspected?.(member, new Error('ECONNRESET'), () => {});
    await h.settled();
    assert.deepEqual(h.removed, [], 'held while its connection to us is open');
    h.fd.memberLeft?.(member.id);
    h.fd.connectionClosed?.(member.id);
    assert.deepEqual(h.removed, ['leave']);
    assert.deepEqual(h.forgotten, [member.id]);
    assert.equal(h.fd.stats?.().heldVerdicts, 1);
    await h.fd.stop?.();
  });

  test('a crashed member (its connection to us closed too) is removed as unreachable at once', async () => {
    const h = harness({ alive: false, connected: false });
    h.fd.memberSuspected?.(member, new Error('ECONNRESET'), () => {});
    await h.settled();
    assert.deepEqual(h.removed, ['unreachable']);
    assert.equal(h.fd.stats?.().heldVerdicts, 0);
  });

  test('a held verdict whose connection stays open (half-open, partition) ends after verifyTimeoutMs', async () => {
    const h = harness({ alive: false, connected: true }, 40);
    const started = Date.now();
    h.fd.memberSuspected?.(member, new Error('send timed out'), () => {});
    await waitFor(() => h.removed.length > 0, 'the held verdict to end', { timeoutMs: 2_000 });
    assert.deepEqual(h.removed, ['unreachable']);
    assert.ok(Date.now() - started >= 35, 'not before the bound');
  });

  test('while a verdict is held, further suspicions start no new verification', async () => {
    const h = harness({ alive: false, connected: true });
    h.fd.memberSuspected?.(member, new Error('reset'), () => {});
    await h.settled();
    h.fd.memberSuspected?.(member, new Error('reset'), () => {});
    h.fd.memberSuspected?.(member, new Error('reset'), () => {});
    await h.settled();
    assert.equal(h.verifications(), 1);
    h.fd.connectionClosed?.(member.id);
    assert.deepEqual(h.removed, ['unreachable'], 'removed once');
    h.fd.connectionClosed?.(member.id);
    assert.deepEqual(h.removed, ['unreachable'], 'and only once');
  });

  test('the membership service removing the member first cancels the held verdict', async () => {
    const h = harness({ alive: false, connected: true });
    h.fd.memberSuspected?.(member, new Error('reset'), () => {});
    await h.settled();
    h.fd.memberLeft?.(member.id);
    const passed: RemoveReason[] = [];
    h.fd.memberRemoved?.(member, 'leave', (_m, r) => passed.push(r));
    h.fd.connectionClosed?.(member.id);
    assert.deepEqual(passed, ['leave']);
    assert.deepEqual(h.removed, [], 'no second removal');
  });

  test("the SWIM detector's removal of a member that sent its LEAVE meanwhile is a leave", () => {
    const h = harness({ alive: false, connected: false });
    h.fd.memberLeft?.(member.id);
    const passed: RemoveReason[] = [];
    h.fd.memberRemoved?.(member, 'unreachable', (_m, r) => passed.push(r));
    assert.deepEqual(passed, ['leave']);
  });

  test('a member that answers is kept', async () => {
    const h = harness({ alive: true, connected: true });
    h.fd.memberSuspected?.(member, new Error('reset'), () => {});
    await h.settled();
    h.fd.connectionClosed?.(member.id);
    assert.deepEqual(h.removed, []);
    assert.equal(h.fd.stats?.().falseAlarms, 1);
  });
});
