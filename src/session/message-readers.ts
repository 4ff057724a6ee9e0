/**
 * Checked readers of the session messages that arrive from members (layouts in messages.ts). A
 * member holds the cluster key, but what it sends is still checked before anything of it is used:
 * each reader returns the message as its typed shape, or a {@link Refused} saying which counter
 * the refusal goes to and why. The readers check the shape in place (no copy of the message); the
 * manager then checks what needs its state (is this session here, is this answer one it asked for,
 * how far ahead of its copy a version is).
 *
 * Versions: a session's version is a Lamport clock that only goes up, one per write. A remote
 * version is a safe integer from 0 to {@link VERSION_LIMIT} (2^52), and for a session this node
 * holds at most {@link VERSION_STEP} (2^32) ahead of its copy. No honest cluster comes near either
 * (2^32 writes to one session during one partition; 2^52 writes to one session at all), while a
 * version near 2^53 would stop the clock (2^53 + 1 === 2^53 in a double) and with it the ordering
 * of every later write. Versions below the local one are not refused here: they are the stale and
 * reordered writes the merge rules count and skip (docs/architecture.md).
 */
import { isSessionId } from './ids.js';
import type { Msg, SessionRecord } from './messages.js';
import { type ReceivedValue, receiveValue } from './session.js';

/** Highest version accepted from the network (2^52: half the safe range, far below the 2^53 where +1 is lost). */
export const VERSION_LIMIT = 2 ** 52;
/** How far ahead of this node's copy of a session a remote version may be. */
export const VERSION_STEP = 2 ** 32;
/** Longest member (writer, owner) id accepted; nodes use 32 hex characters. */
const MEMBER_ID_MAX = 64;

/** The counter a refusal goes to. */
export type RefusalCounter = 'malformed' | 'malformedIds' | 'refusedVersion';

/** Why a message was not used, and which counter says so. */
export class Refused {
  constructor(
    readonly counter: RefusalCounter,
    readonly why: string,
  ) {}
}

const BAD_ID = new Refused('malformedIds', 'a session id that is not 32 base64url characters');
const BAD_VERSION = new Refused('refusedVersion', `a version that is not an integer from 0 to 2^52`);

function malformed(why: string): Refused {
  return new Refused('malformed', why);
}

export type CreatedMsg = readonly [
  type: typeof Msg.CREATED,
  ctx: string,
  id: string,
  creationTime: number,
  maxInactive: number,
  version: number,
  names: readonly string[],
  values: readonly unknown[],
];
export type DeltaMsg = readonly [
  type: typeof Msg.DELTA,
  ctx: string,
  id: string,
  base: number,
  version: number,
  names: readonly string[],
  values: readonly unknown[],
  removed: readonly string[],
  maxInactive: number | null,
];
export type AccessedMsg = readonly [type: typeof Msg.ACCESSED, ctx: string, id: string, at: number, readOnly?: boolean];
export type ExpiredMsg = readonly [type: typeof Msg.EXPIRED, ctx: string, id: string, reason: unknown];
export type IdChangedMsg = readonly [type: typeof Msg.ID_CHANGED, ctx: string, oldId: string, newId: string];
export type SessionRequestMsg = readonly [type: typeof Msg.SESSION_REQUEST, ctx: string, id: string];
/** `hops`: how often the asker was redirected (0..16; absent from older nodes). */
export type AcquireMsg = readonly [type: typeof Msg.ACQUIRE, ctx: string, id: string, requestId: number, hops?: number];
/** Largest hop count an ACQUIRE may carry (the asker takes over after 16 redirects). */
const MAX_ACQUIRE_HOPS = 64;
export type GrantMsg = readonly [
  type: typeof Msg.GRANT,
  ctx: string,
  id: string,
  requestId: number,
  ownerId: string,
  granted: boolean,
];

/** Whether `v` is a version this node may take from the network (before the relative bound). */
export function isVersion(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= VERSION_LIMIT;
}

/** Whether a remote `version` is too far ahead of a local copy at `local`. */
export function tooFarAhead(version: number, local: number): boolean {
  return version - local > VERSION_STEP;
}

function isId(v: unknown): v is string {
  return typeof v === 'string' && isSessionId(v);
}

/** A member id as records and messages carry them (a string of at most 64 characters). */
export function isMemberId(v: unknown): v is string {
  return typeof v === 'string' && v.length <= MEMBER_ID_MAX;
}

function isFiniteNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function isInterval(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function isStrings(v: unknown): v is string[] {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'string') return false;
  return true;
}

/** Names and values: two arrays of the same length, names strings (values are checked as they are stored). */
function attributeLists(names: unknown, values: unknown): Refused | undefined {
  if (!isStrings(names) || !Array.isArray(values) || names.length !== values.length)
    return malformed('malformed attribute lists');
  return undefined;
}

export function readCreated(m: readonly unknown[]): CreatedMsg | Refused {
  if (m.length < 8) return malformed('a created message that is too short');
  if (!isId(m[2])) return BAD_ID;
  if (!isFiniteNumber(m[3]) || !isInterval(m[4])) return malformed('created: bad creation time or timeout');
  if (!isVersion(m[5])) return BAD_VERSION;
  return attributeLists(m[6], m[7]) ?? (m as unknown as CreatedMsg);
}

export function readDelta(m: readonly unknown[]): DeltaMsg | Refused {
  if (m.length < 9) return malformed('a delta that is too short');
  if (!isId(m[2])) return BAD_ID;
  const base = m[3];
  const version = m[4];
  if (!isVersion(version)) return BAD_VERSION;
  // The writer's version before this write: below it (a write moves the clock on).
  if (typeof base !== 'number' || !Number.isInteger(base) || base < 0 || base >= version)
    return new Refused('refusedVersion', 'a delta whose base is not below its version');
  if (!isStrings(m[7])) return malformed('malformed removals');
  if (m[8] !== null && !isInterval(m[8])) return malformed('delta: bad timeout');
  return attributeLists(m[5], m[6]) ?? (m as unknown as DeltaMsg);
}

export function readAccessed(m: readonly unknown[]): AccessedMsg | Refused {
  if (!isId(m[2])) return BAD_ID;
  if (!isFiniteNumber(m[3])) return malformed('accessed: bad time');
  if (m[4] !== undefined && typeof m[4] !== 'boolean') return malformed('accessed: bad read-only flag');
  return m as unknown as AccessedMsg;
}

export function readExpired(m: readonly unknown[]): ExpiredMsg | Refused {
  return isId(m[2]) ? (m as unknown as ExpiredMsg) : BAD_ID;
}

export function readIdChanged(m: readonly unknown[]): IdChangedMsg | Refused {
  if (!isId(m[2]) || !isId(m[3])) return BAD_ID;
  if (m[2] === m[3]) return malformed('an id change to the same id');
  return m as unknown as IdChangedMsg;
}

export function readSessionRequest(m: readonly unknown[]): SessionRequestMsg | Refused {
  return isId(m[2]) ? (m as unknown as SessionRequestMsg) : BAD_ID;
}

export function readAcquire(m: readonly unknown[]): AcquireMsg | Refused {
  if (!isId(m[2])) return BAD_ID;
  const requestId = m[3];
  if (typeof requestId !== 'number' || !Number.isSafeInteger(requestId) || requestId < 0)
    return malformed('malformed acquire');
  const hops = m[4];
  if (hops !== undefined && !(Number.isInteger(hops) && (hops as number) >= 0 && (hops as number) <= MAX_ACQUIRE_HOPS))
    return malformed('malformed acquire: hops');
  return m as unknown as AcquireMsg;
}

export function readGrant(m: readonly unknown[]): GrantMsg | Refused {
  if (!isId(m[2])) return BAD_ID;
  if (typeof m[3] !== 'number' || !Number.isSafeInteger(m[3]) || !isMemberId(m[4]) || typeof m[5] !== 'boolean')
    return malformed('malformed grant');
  return m as unknown as GrantMsg;
}

export type TakenMsg = readonly [
  type: typeof Msg.TAKEN,
  ctx: string,
  id: string,
  fencedOwner: string,
  fence: number,
  record: SessionRecord,
];

/** TAKEN: the record is the session named, at the fence version. */
export function readTaken(m: readonly unknown[]): TakenMsg | Refused {
  if (!isId(m[2])) return BAD_ID;
  if (!isMemberId(m[3])) return malformed('taken: bad fenced owner');
  if (!isVersion(m[4])) return BAD_VERSION;
  const r = readRecord(m[5]);
  if (r instanceof Refused) return r;
  if (r[0] !== m[2] || r[4] !== m[4]) return malformed('taken: the record is not the session at the fence');
  return m as unknown as TakenMsg;
}

/**
 * A whole session (state transfer, repair): ids, numbers and the four parallel lists checked,
 * every attribute stamp at most the record's version.
 */
export function readRecord(r: unknown): SessionRecord | Refused {
  if (!Array.isArray(r) || r.length < 10) return malformed('a session record that is not a list of 10');
  if (!isId(r[0])) return BAD_ID;
  if (!isFiniteNumber(r[1]) || !isFiniteNumber(r[2]) || !isInterval(r[3]))
    return malformed('record: bad times or timeout');
  const version = r[4];
  if (!isVersion(version)) return BAD_VERSION;
  const bad = attributeLists(r[5], r[6]);
  if (bad !== undefined) return bad;
  const n = (r[5] as string[]).length;
  const stampV: unknown = r[7];
  const stampW: unknown = r[8];
  if (!Array.isArray(stampV) || !Array.isArray(stampW) || stampV.length !== n || stampW.length !== n)
    return malformed('record: stamps do not match the attributes');
  for (let i = 0; i < n; i++) {
    const v: unknown = stampV[i];
    if (!isVersion(v) || v > version) return BAD_VERSION;
    if (!isMemberId(stampW[i])) return malformed('record: bad writer');
  }
  if (!isMemberId(r[9])) return malformed('record: bad owner');
  const bases: unknown = r[10];
  if (bases !== undefined) {
    if (!Array.isArray(bases) || bases.length !== n) return malformed('record: bases do not match the attributes');
    for (let i = 0; i < n; i++) {
      const b: unknown = bases[i];
      if (!isVersion(b) || b > (stampV[i] as number)) return BAD_VERSION;
    }
  }
  return r as SessionRecord;
}

/**
 * The values of a message, checked (and scalars decoded) before anything of it is applied: all or
 * nothing. `null` is a removal where `removals` allows it. The lists were checked by the reader.
 * @throws when a value is not bytes, or a scalar does not decode.
 */
export function receivedValues(values: readonly unknown[], removals: boolean): (ReceivedValue | null)[] {
  return values.map((b) => (removals && b === null ? null : receiveValue(b)));
}

/** The state-transfer tombstones: session ids only (anything else is counted by `onBadId`). */
export function readTombstones(ids: unknown, onBadId: () => void): string[] {
  if (!Array.isArray(ids)) return [];
  const out: string[] = [];
  for (const id of ids) {
    if (isId(id)) out.push(id);
    else onBadId();
  }
  return out;
}
