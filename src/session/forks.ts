/**
 * Where this node's copy of a session forked from members it lost, so that a rejoin merge can
 * tell concurrent writes apart (merge.ts {@link ApartWrites}).
 *
 * Why: an attribute's stamp (version, writer, base) tells a write that had seen another from one
 * that had not only while the versions of the two writers were in step. Two sides of a partition
 * advance the session's version independently; the side that wrote more often ends with a base
 * above the other side's version although it never saw it, so the plain rule (base < the other's
 * version) missed most conflicts after a heal: writes were lost without a report.
 *
 * How: members removed from the view are "apart" until a merge with them completed. A session's
 * fork is its version just before the first change made to it here (a local write, or one
 * applied from a member) after the latest batch of removals; removals less than
 * {@link REMOVAL_BATCH_MS} apart (one partition seen member by member) are one batch. In a record
 * from a member apart, an attribute that both sides changed after the fork — this node's value
 * written by a member not apart, the record's by a member apart — is a conflict, whatever the
 * bases say: neither side could see the other's write. Costs two numbers per session and a
 * comparison per change.
 */
import type { Session } from './session.js';

/** Removals closer than this are one batch (the members of one partition are dropped one by one). */
export const REMOVAL_BATCH_MS = 5_000;
/** Bound on the members remembered as apart (those that never come back stay until evicted). */
const MAX_APART = 1024;

/** What merge.ts needs to judge a record from a member apart. */
export interface ApartWrites {
  /** The session's version when this node last heard from that member's side (its fork). */
  readonly fork: number;
  /** True when `writer` is a member apart (the other side). */
  apart(writer: string): boolean;
}

export class Forks {
  /** Batches of removals so far (0: none yet, nothing to track). */
  #epoch = 0;
  #lastRemovalAt = Number.NEGATIVE_INFINITY;
  /** Members apart: id → the batch of its removal. */
  readonly #apart = new Map<string, number>();
  readonly #isApart = (writer: string): boolean => this.#apart.has(writer);

  /** A member left the view: apart until a merge with it completes. */
  removed(memberId: string, now = Date.now()): void {
    if (now - this.#lastRemovalAt >= REMOVAL_BATCH_MS) this.#epoch++;
    this.#lastRemovalAt = now;
    this.#apart.delete(memberId);
    this.#apart.set(memberId, this.#epoch);
    if (this.#apart.size > MAX_APART) this.#apart.delete(this.#apart.keys().next().value!);
  }

  /** A merge with the member completed: both sides hold each other's writes again. */
  merged(memberId: string): void {
    this.#apart.delete(memberId);
  }

  /** Call before any change to `s` (local write, applied write, merged record). */
  touch(s: Session): void {
    if (s.forkEpoch === this.#epoch) return;
    s.forkEpoch = this.#epoch;
    s.fork = s.version;
  }

  /** For a record from `from`: how to tell concurrent writes, or undefined when `from` is not apart. */
  apartWrites(s: Session, from: string): ApartWrites | undefined {
    const epoch = this.#apart.get(from);
    // No change here since `from` left: nothing on this side can be concurrent with it.
    if (epoch === undefined || s.forkEpoch < epoch) return undefined;
    return { fork: s.fork, apart: this.#isApart };
  }
}
