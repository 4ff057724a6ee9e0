/**
 * The BackupManager's own messages (layouts in messages.ts: FETCH … SHARE_SENT): builders and
 * checked readers. Records inside them are checked by readRecord when applied, one by one.
 */
import { isSessionId } from './ids.js';
import { isMemberId, Refused } from './message-readers.js';
import { Msg, type SessionRecord } from './messages.js';

/** Most records in one COPIES message and ids in one RELEASE: a rebalance chunk never holds more. */
export const MAX_CHUNK = 10_000;

/**
 * How the asker will use a fetched session: absent, it serves it after taking it over with the
 * ownership protocol (ACQUIRE); `true`, only to read it; {@link TAKE}, it asks the owner to hand
 * the session over in the answer (one round trip instead of FETCH then ACQUIRE).
 */
export type FetchMode = true | typeof TAKE;
/** FETCH mode: the owner hands the session over in its answer (FETCHED granted). */
export const TAKE = 'take';
/**
 * hinted: another member named the receiver as the session's owner (its copy, or "moved to"): a
 * receiver whose own take of the session is under way answers once it ended, not "none here".
 */
export type FetchMsg = readonly [
  type: typeof Msg.FETCH,
  ctx: string,
  id: string,
  requestId: number,
  mode?: FetchMode | null,
  hinted?: true,
];
/**
 * granted (`true`, with a record): the sender, the owner, handed the session over with this record
 * (the asker owns it now). A member id (with null): the sender holds no copy, and the member it
 * last saw serve the session (it handed it over to, or dropped its copy for) is that one.
 */
export type FetchedMsg = readonly [
  type: typeof Msg.FETCHED,
  ctx: string,
  requestId: number,
  record: unknown,
  granted?: true | string,
];
export type CopiesMsg = readonly [type: typeof Msg.COPIES, ctx: string, records: readonly unknown[]];
export type ReleaseMsg = readonly [
  type: typeof Msg.RELEASE,
  ctx: string,
  ids: readonly string[],
  versions: readonly number[],
];
export type ShareSentMsg = readonly [type: typeof Msg.SHARE_SENT, ctx: string];

/**
 * `mode`: true, the asker only reads it; TAKE, it asks the owner for the session and its ownership
 * at once. `hinted`: asked because another member named the receiver as the session's owner.
 */
export function fetchMsg(
  ctx: string,
  id: string,
  requestId: number,
  mode?: FetchMode | false,
  hinted = false,
): FetchMsg {
  const m = mode === undefined || mode === false ? null : mode;
  if (hinted) return [Msg.FETCH, ctx, id, requestId, m, true];
  return m === null ? [Msg.FETCH, ctx, id, requestId] : [Msg.FETCH, ctx, id, requestId, m];
}
/** `granted`: the sender handed the session over to the asker (only with a record). */
export function fetchedMsg(ctx: string, requestId: number, record: SessionRecord | null, granted = false): FetchedMsg {
  return granted && record !== null
    ? [Msg.FETCHED, ctx, requestId, record, true]
    : [Msg.FETCHED, ctx, requestId, record];
}
/** No copy here; `movedTo` (a member id) is where this node last saw the session served. */
export function movedMsg(ctx: string, requestId: number, movedTo: string): FetchedMsg {
  return [Msg.FETCHED, ctx, requestId, null, movedTo];
}
export function copiesMsg(ctx: string, records: SessionRecord[]): CopiesMsg {
  return [Msg.COPIES, ctx, records];
}
export function releaseMsg(ctx: string, ids: readonly string[], versions: readonly number[]): ReleaseMsg {
  return [Msg.RELEASE, ctx, ids, versions];
}
export function shareSentMsg(ctx: string): ShareSentMsg {
  return [Msg.SHARE_SENT, ctx];
}

const requestIdOk = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

const modeOk = (v: unknown): boolean => v === true || v === TAKE;

export function readFetch(m: unknown[]): FetchMsg | Refused {
  const shapeOk =
    m.length === 4 ||
    (m.length === 5 && modeOk(m[4])) ||
    (m.length === 6 && (m[4] === null || modeOk(m[4])) && m[5] === true);
  if (!shapeOk || !requestIdOk(m[3]))
    return new Refused(
      'malformed',
      `a fetch that is not [t, ctx, id, requestId, mode? (true | "${TAKE}" | null), hinted? (true)]`,
    );
  if (typeof m[2] !== 'string' || !isSessionId(m[2]))
    return new Refused('malformedIds', 'a session id that is not 32 base64url characters');
  return m as unknown as FetchMsg;
}

export function readFetched(m: unknown[]): FetchedMsg | Refused {
  const fifthOk = m[3] === null ? isMemberId(m[4]) && m[4] !== '' : m[4] === true;
  if ((m.length !== 4 && (m.length !== 5 || !fifthOk)) || !requestIdOk(m[2]) || (m[3] !== null && !Array.isArray(m[3])))
    return new Refused(
      'malformed',
      'a fetch answer that is not [t, ctx, requestId, record | null, granted? (true, with a record) | movedTo? (a member id, with null)]',
    );
  return m as unknown as FetchedMsg;
}

export function readCopies(m: unknown[]): CopiesMsg | Refused {
  if (m.length !== 3 || !Array.isArray(m[2]) || m[2].length === 0 || m[2].length > MAX_CHUNK)
    return new Refused('malformed', `copies that are not [t, ctx, records (1 to ${MAX_CHUNK})]`);
  return m as unknown as CopiesMsg;
}

export function readRelease(m: unknown[]): ReleaseMsg | Refused {
  const ids = m[2];
  const versions = m[3];
  if (
    m.length !== 4 ||
    !Array.isArray(ids) ||
    ids.length === 0 ||
    ids.length > MAX_CHUNK ||
    !Array.isArray(versions) ||
    versions.length !== ids.length
  )
    return new Refused('malformed', `a release that is not [t, ctx, ids (1 to ${MAX_CHUNK}), versions]`);
  for (const v of versions)
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      return new Refused('malformed', 'a release version that is not a non-negative integer');
  for (const id of ids)
    if (typeof id !== 'string' || !isSessionId(id))
      return new Refused('malformedIds', 'a session id that is not 32 base64url characters');
  return m as unknown as ReleaseMsg;
}

export function readShareSent(m: unknown[]): ShareSentMsg | Refused {
  if (m.length !== 2) return new Refused('malformed', 'a share-sent notice that is not [t, ctx]');
  return m as unknown as ShareSentMsg;
}
