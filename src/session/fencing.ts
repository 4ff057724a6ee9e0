/**
 * Fencing (ownership "migrate"): a node that takes a session over from a live owner that did not
 * hand it over within sessions.ownershipTimeoutMs (a long request) moves the session's version up
 * by {@link FENCE_STEP} to the fence and tells every member (TAKEN, with its copy). From then on:
 *
 * - a write of the fenced owner whose base is below the fence is stale: refused on every node
 *   (fencedWrites). Its writes after the take-over are all such: its copy's version only reaches
 *   the fence once it learned of the take-over (the step is far more than one request writes);
 * - a node that applied such a write before the notice arrived (another connection) undoes it:
 *   for everything older than the fence, the new owner's copy is the truth ({@link revertTo});
 * - the fenced owner itself learns it lost the session: it stops answering as its owner and, once
 *   its requests on it ended, drops their changes (counted, logged) and reverts to that copy.
 *
 * The new owner's own writes come after the notice on the same ordered connection, so every node
 * has reverted before they arrive.
 */
import type { Member } from '../channel/types.js';
import type { Logger } from '../core/logger.js';
import type { Counter } from './counters.js';
import { revertTo } from './merge.js';
import { takenMsg } from './message-builders.js';
import { receivedValues, type TakenMsg } from './message-readers.js';
import type { Session } from './session.js';
import { toRecord } from './state-donor.js';

/** How far a forced take-over moves the version: more than the writes of any request in flight. */
export const FENCE_STEP = 2 ** 20;

/** The taker: fences `owner` on `s` and returns the TAKEN message for every member. */
export function fence(s: Session, contextName: string, owner: string): TakenMsg {
  s.version += FENCE_STEP;
  s.fence = { owner, version: s.version };
  return takenMsg(contextName, owner, toRecord(s));
}

/** Whether a write of `writer` based on version `base` was made by an owner fenced since. */
export function isFenced(s: Session, writer: string, base: number): boolean {
  const f = s.fence;
  return f !== undefined && f.owner === writer && base < f.version;
}

export interface FencingHost {
  readonly localId: string;
  readonly logger: Logger;
  count(counter: Counter, by: number): void;
  /** Runs the hand-overs waiting for `s` (they now redirect to its new owner). */
  handOver(s: Session): void;
  /** Asks `from` for the whole of `s` (what it wrote while this node's requests still ran). */
  repair(s: Session, from: Member): void;
}

/**
 * TAKEN from `from`: fences the owner named on this node's copy `s` and reverts what it wrote
 * after the take-over; on the fenced owner itself, gives up the session (now, or once its requests
 * on it ended). @throws when a value of the record does not decode (nothing applied).
 */
export function onTaken(host: FencingHost, s: Session, m: TakenMsg, from: Member): void {
  const fenced = m[3];
  const record = m[5];
  const incoming = receivedValues(record[6], true);
  s.fence = { owner: fenced, version: m[4] };
  if (fenced !== host.localId) {
    if (s.active <= 0) {
      s.ownerId = from.id;
      s.primary = false;
    }
    const undone = revertTo(s, record, incoming, fenced, false);
    if (undone > 0) host.count('fencedWrites', 1);
    return;
  }
  // This node lost the session: it owns it no more, and answers those waiting with the new owner.
  s.ownerId = from.id;
  s.primary = false;
  const revert = () => {
    s.revert = undefined;
    s.detectInPlaceChanges();
    const undone = revertTo(s, record, incoming, fenced, true);
    if (undone > 0) {
      host.count('fencedWrites', 1);
      host.logger.warn(
        { session: s.id.slice(0, 8), newOwner: from.name, attributes: undone },
        'a request changed a session that another node took over while it ran (sessions.ownershipTimeoutMs): its changes were dropped',
      );
    }
  };
  if (s.active <= 0) revert();
  else {
    // Changes of the new owner that arrive meanwhile may be held back by this node's own (dirty)
    // ones, which the revert then drops: ask it for the whole session once reverted.
    s.revert = () => {
      revert();
      host.repair(s, from);
    };
  }
  host.handOver(s);
}
