/**
 * Builders of the session messages, beside their checked readers (message-readers.ts): every
 * message a manager sends is made here, typed, so no code builds a positional array by hand. The
 * wire encoding stays the array of messages.ts (append only); a builder returns exactly the array
 * its reader accepts, and allocates nothing but that array.
 */
import type { Nested } from '../codec/value-codec.js';
import type {
  AccessedMsg,
  AcquireMsg,
  CreatedMsg,
  DeltaMsg,
  ExpiredMsg,
  GrantMsg,
  IdChangedMsg,
  SessionRequestMsg,
  TakenMsg,
} from './message-readers.js';
import { Msg, type SessionRecord } from './messages.js';
import { attributeWire, type Session } from './session.js';

/** An attribute value as a sender puts it in a message: its codec bytes, or a scalar written in place. */
export type WireValue = Buffer | Nested;

/** The messages one request's end produces (the only ones a BATCH holds). */
export type ChangeMsg = CreatedMsg | DeltaMsg | AccessedMsg;
/** Why a session ended, as EXPIRED carries it. */
export type EndReason = 'expired' | 'invalidated';

export type BatchMsg = readonly [type: typeof Msg.BATCH, ctx: string, messages: readonly ChangeMsg[]];
export type SessionDataMsg = readonly [type: typeof Msg.SESSION_DATA, ctx: string, record: SessionRecord];
export type StateRequestMsg = readonly [type: typeof Msg.STATE_REQUEST, ctx: string, requestId: unknown];
export type StateNoneMsg = readonly [type: typeof Msg.STATE_NONE, ctx: string, requestId: unknown];
export type StateChunkMsg = readonly [
  type: typeof Msg.STATE_CHUNK,
  ctx: string,
  requestId: unknown,
  seq: number,
  records: readonly SessionRecord[],
];
export type StateCompleteMsg = readonly [
  type: typeof Msg.STATE_COMPLETE,
  ctx: string,
  requestId: unknown,
  count: number,
  tombstones: readonly string[],
];

/** Every message a session manager sends. */
export type SessionMsg =
  | ChangeMsg
  | BatchMsg
  | ExpiredMsg
  | IdChangedMsg
  | SessionRequestMsg
  | SessionDataMsg
  | AcquireMsg
  | GrantMsg
  | TakenMsg
  | StateRequestMsg
  | StateNoneMsg
  | StateChunkMsg
  | StateCompleteMsg;

/** CREATED: the first replication of a new session, every attribute. */
export function createdMsg(
  ctx: string,
  id: string,
  creationTime: number,
  maxInactive: number,
  version: number,
  names: string[],
  values: WireValue[],
): CreatedMsg {
  return [Msg.CREATED, ctx, id, creationTime, maxInactive, version, names, values];
}

/** DELTA: the attributes changed since `base` (removals by name); `maxInactive` null when unchanged. */
export function deltaMsg(
  ctx: string,
  id: string,
  base: number,
  version: number,
  names: string[],
  values: WireValue[],
  removed: string[],
  maxInactive: number | null,
): DeltaMsg {
  return [Msg.DELTA, ctx, id, base, version, names, values, removed, maxInactive];
}

/** ACCESSED: used without a change at `at`; `readOnly` leaves the session with its owner. */
export function accessedMsg(ctx: string, id: string, at: number, readOnly: boolean): AccessedMsg {
  return readOnly ? [Msg.ACCESSED, ctx, id, at, true] : [Msg.ACCESSED, ctx, id, at];
}

export function expiredMsg(ctx: string, id: string, reason: EndReason): ExpiredMsg {
  return [Msg.EXPIRED, ctx, id, reason];
}

export function idChangedMsg(ctx: string, oldId: string, newId: string): IdChangedMsg {
  return [Msg.ID_CHANGED, ctx, oldId, newId];
}

export function sessionRequestMsg(ctx: string, id: string): SessionRequestMsg {
  return [Msg.SESSION_REQUEST, ctx, id];
}

export function sessionDataMsg(ctx: string, record: SessionRecord): SessionDataMsg {
  return [Msg.SESSION_DATA, ctx, record];
}

/** BATCH: a turn's change messages of one context, in order (2 to BATCH_MESSAGES of them). */
export function batchMsg(ctx: string, messages: readonly ChangeMsg[]): BatchMsg {
  return [Msg.BATCH, ctx, messages];
}

/** ACQUIRE; `hops`: the redirects the asker followed so far (the owner serves the most-redirected first). */
export function acquireMsg(ctx: string, id: string, requestId: number, hops: number): AcquireMsg {
  return [Msg.ACQUIRE, ctx, id, requestId, hops];
}

export function grantMsg(ctx: string, id: string, requestId: number, ownerId: string, granted: boolean): GrantMsg {
  return [Msg.GRANT, ctx, id, requestId, ownerId, granted];
}

/** TAKEN: `record` is the session at the fence version (its version). */
export function takenMsg(ctx: string, fencedOwner: string, record: SessionRecord): TakenMsg {
  return [Msg.TAKEN, ctx, record[0], fencedOwner, record[4], record];
}

export function stateRequestMsg(ctx: string, requestId: string): StateRequestMsg {
  return [Msg.STATE_REQUEST, ctx, requestId];
}

export function stateNoneMsg(ctx: string, requestId: unknown): StateNoneMsg {
  return [Msg.STATE_NONE, ctx, requestId];
}

export function stateChunkMsg(ctx: string, requestId: unknown, seq: number, records: SessionRecord[]): StateChunkMsg {
  return [Msg.STATE_CHUNK, ctx, requestId, seq, records];
}

export function stateCompleteMsg(
  ctx: string,
  requestId: unknown,
  count: number,
  tombstones: string[],
): StateCompleteMsg {
  return [Msg.STATE_COMPLETE, ctx, requestId, count, tombstones];
}

/** The CREATED of `s`, just stamped `version` (merge.ts stamp): every attribute it holds. */
export function createdOf(ctx: string, s: Session, version: number): CreatedMsg {
  const names: string[] = [];
  const values: WireValue[] = [];
  s.attributes.forEach((a, name) => {
    if (a.removed) return;
    names.push(name);
    values.push(attributeWire(a));
  });
  return createdMsg(ctx, s.id, s.creationTime, s.maxInactiveInterval, version, names, values);
}

/**
 * The DELTA of `s` from `base` to `version` (just stamped): the attributes named in `changed`
 * (the changes as they were before the stamp cleared them), written or removed. `changed` is
 * taken: it becomes the message's list of names set (compacted in place).
 */
export function deltaOf(
  ctx: string,
  s: Session,
  base: number,
  version: number,
  changed: string[] | undefined,
  maxInactive: number | null,
): DeltaMsg {
  const n = changed === undefined ? 0 : changed.length;
  if (n === 0) return deltaMsg(ctx, s.id, base, version, NO_NAMES, NO_VALUES, NO_NAMES, maxInactive);
  const names = changed!;
  // Sized once: an array grown from [] by push reserves 16 slots, on every request's delta.
  const values: WireValue[] = new Array(n);
  let removed: string[] | undefined;
  let k = 0;
  for (let i = 0; i < n; i++) {
    const name = names[i]!;
    const a = s.attributes.get(name);
    if (a === undefined) continue;
    if (a.removed) (removed ??= []).push(name);
    else {
      names[k] = name;
      values[k++] = attributeWire(a);
    }
  }
  if (k < n) {
    names.length = k;
    values.length = k;
  }
  return deltaMsg(ctx, s.id, base, version, names, values, removed ?? NO_NAMES, maxInactive);
}

/** The empty lists of a DELTA that sets or removes nothing (frozen: messages are never changed once built). */
const NO_NAMES: string[] = Object.freeze([]) as unknown as string[];
const NO_VALUES: WireValue[] = Object.freeze([]) as unknown as WireValue[];

/** The attribute values a CREATED or DELTA carries; none for an ACCESSED. */
export function valuesOf(m: ChangeMsg): readonly WireValue[] | undefined {
  if (m[0] === Msg.CREATED) return m[7] as readonly WireValue[];
  if (m[0] === Msg.DELTA) return m[6] as readonly WireValue[];
  return undefined;
}
