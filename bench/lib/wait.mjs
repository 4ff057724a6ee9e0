// Waiting on the nodes instead of sleeping: a harness polls what a node reports (its stats over IPC
// or /_clowder/stats) until the state it needs holds — members seen, sessions replicated, every
// change sent was applied — with a deadline. Sleeps stay only where they are the measurement.
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Calls `condition()` (may be async) every `intervalMs` until it returns a truthy value, which is
 * returned. After `timeoutMs` it throws, naming `what` (a string, or a function of the last value
 * for the state reached).
 */
export async function waitUntil(condition, { timeoutMs = 10_000, intervalMs = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await condition();
    if (v) return v;
    if (Date.now() > deadline) {
      const state = typeof what === 'function' ? what(v) : what;
      throw new Error(`${state}: not reached within ${timeoutMs} ms`);
    }
    await sleep(intervalMs);
  }
}

/** The same, but resolves false instead of throwing when the deadline passes. */
export async function waitUntilOrNot(condition, options) {
  try {
    return await waitUntil(condition, options);
  } catch {
    return false;
  }
}

/**
 * Replication changes (created and delta messages, also inside batches) a clowder DeltaManager has
 * sent and received, from its stats() (sent/received by type). Both go to every member.
 */
export function changeCounts(managerStats) {
  const n = (by) => (by?.created ?? 0) + (by?.delta ?? 0);
  return { sent: n(managerStats?.sent), received: n(managerStats?.received) };
}

/**
 * True when every node of a full mesh has received every change the others sent: the replication
 * queues are empty. `counts`: one { sent, received } per node (changeCounts, or a Map server's).
 */
export function replicated(counts) {
  const sent = counts.reduce((a, c) => a + c.sent, 0);
  return counts.every((c) => c.received >= sent - c.sent);
}
