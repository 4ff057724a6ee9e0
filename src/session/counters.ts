/**
 * The session manager's counters (one table, named in stats()) and the refusals of what members
 * send: each refusal is counted, and logged at most once per {@link REFUSAL_LOG_MS} per counter
 * (a member that floods must not flood the log too).
 */
import type { Member } from '../channel/types.js';
import type { Logger } from '../core/logger.js';
import { MSG_NAMES } from './messages.js';

export const COUNTERS = [
  'requests',
  'requestsAbandoned',
  'replications',
  'accessedSent',
  'replicationErrors',
  'staleDeltas',
  'conflicts',
  'sessionsCreated',
  'sessionsExpired',
  'sessionsInvalidated',
  'rejectedSessions',
  'malformed',
  'unencodable',
  'repairs',
  'ownershipMoves',
  'ownershipTimeouts',
  'ownershipForced',
  /**
   * Writes of an owner fenced by a forced take-over (sessions.ownershipTimeoutMs): refused as stale
   * on arrival, undone when they arrived before the take-over notice, or dropped on the fenced
   * owner itself (its request ended after it lost the session).
   */
  'fencedWrites',
  'readOnlyRequests',
  'readOnlyChangesDiscarded',
  'valueBytesSent',
  // Refusals of what members send (see message-readers.ts and docs/architecture.md "Members").
  /** A session id from the network that is not 32 base64url characters (clowder makes upper-case hex). */
  'malformedIds',
  /** SESSION_DATA or a state-transfer message this node did not ask that member for. */
  'refusedSessionData',
  /** A GRANT for no ACQUIRE of this node's, or not from the member asked, or for another session. */
  'refusedGrant',
  /** An EXPIRED for a session this node does not hold. */
  'refusedExpired',
  /** An ID_CHANGED from an id this node does not hold, or to one it holds or invalidated. */
  'refusedIdChanges',
  /** A version beyond 2^52, 2^32 ahead of this node's copy, or a delta whose base is not below it. */
  'refusedVersion',
  /** A new session from a member while this node holds maxReplicaSessions copies. */
  'refusedReplicaLimit',
  /** A STATE_REQUEST from a member this node is already sending every session to. */
  'refusedStateRequests',
] as const;
export type Counter = (typeof COUNTERS)[number];

/** How often one kind of refusal is logged, at most. */
export const REFUSAL_LOG_MS = 10_000;

/** A fresh counter table, every counter 0. */
export function newCounters(): Record<Counter, number> {
  return Object.fromEntries(COUNTERS.map((k) => [k, 0])) as Record<Counter, number>;
}

/** Counts refusals and logs each kind at most once per interval, with how many since. */
export class Refusals {
  readonly #loggedAt = new Map<Counter, number>();

  constructor(
    private readonly counters: Record<Counter, number>,
    private readonly logger: Logger,
  ) {}

  /** Counts one refusal on `counter` of a message from `from`; `why` goes to the (rate-limited) log. */
  refuse(counter: Counter, from: Member | undefined, why: string): void {
    const n = ++this.counters[counter];
    const now = Date.now();
    const last = this.#loggedAt.get(counter);
    if (last !== undefined && now - last < REFUSAL_LOG_MS) return;
    this.#loggedAt.set(counter, now);
    this.logger.warn({ from: from?.name, why, [counter]: n }, 'refused a session message from a member');
  }
}

/** Message counts by type as { name: count } (types never seen left out; index 0 is 'unknown'). */
export function byName(counts: number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (let t = 0; t < counts.length; t++) if (counts[t]! > 0) out[MSG_NAMES[t] ?? 'unknown'] = counts[t]!;
  return out;
}
