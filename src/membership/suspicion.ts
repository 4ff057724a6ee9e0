/**
 * Lifeguard's local-health-aware suspicion timeout, as memberlist computes it (util.go
 * suspicionTimeout, suspicion.go remainingSuspicionTime): a suspicion starts at `max` and shrinks
 * towards `min` as independent members confirm it; `k` confirmations bring it to `min`.
 */

/** min = mult × max(1, log10(n)) × interval: grows slowly with the cluster size n (this node included). */
export function suspicionMinMs(mult: number, n: number, intervalMs: number): number {
  return Math.round(mult * Math.max(1, Math.log10(Math.max(1, n))) * intervalMs);
}

/** Confirmations expected before the timeout reaches min: suspicionMult − 2, at most the other members that could confirm (n − 2). */
export function expectedConfirmations(mult: number, n: number): number {
  return Math.max(0, Math.min(mult - 2, n - 2));
}

/**
 * Total timeout of a suspicion after `c` independent confirmations:
 * max − log(c + 1) / log(k + 1) × (max − min), never below min (min at once when k is 0).
 */
export function suspicionTimeoutMs(c: number, k: number, minMs: number, maxMs: number): number {
  if (k < 1) return minMs;
  const frac = Math.log(c + 1) / Math.log(k + 1);
  return Math.max(minMs, Math.floor(maxMs - frac * (maxMs - minMs)));
}
