/**
 * The BackupManager's own messages (layouts in messages.ts: FETCH … SHARE_SENT): builders and
 * checked readers. Records inside them are checked by readRecord when applied, one by one.
 */
import { isSessionId } from './ids.js';
import { Refused } from './message-readers.js';
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
export type FetchMsg = readonly [type: typeof Msg.FETCH, ctx: string, id: string, requestId: number, mode?: FetchMode];
/** granted: the sender, the owner, handed the session over with this record (the asker owns it now). */
export type FetchedMsg = readonly [
  type: typeof Msg.FETCHED,
  ctx: string,
  requestId: number,
  record: unknown,
  granted?: true,
];
export type CopiesMsg = readonly [type: typeof Msg.COPIES, ctx: string, records: readonly unknown[]];
export type ReleaseMsg = readonly [
  type: typeof Msg.RELEASE,
  ctx: string,
  ids: readonly string[],
  versions: readonly number[],
];
export type ShareSentMsg = readonly [type: typeof Msg.SHARE_SENT, ctx: string];

/** `mode`: true, the asker only reads it; TAKE, it asks the owner for the session and its ownership at once. */
export function fetchMsg(ctx: string, id: string, requestId: number, mode?: FetchMode | false): FetchMsg {
  return mode === undefined || mode === false ? [Msg.FETCH, ctx, id, requestId] : [Msg.FETCH, ctx, id, requestId, mode];
}
/** `granted`: the sender handed the session over to the asker (only with a record). */
export function fetchedMsg(ctx: string, requestId: number, record: SessionRecord | null, granted = false): FetchedMsg {
  return granted && record !== null
    ? [Msg.FETCHED, ctx, requestId, record, true]
    : [Msg.FETCHED, ctx, requestId, record];
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

export function readFetch(m: unknown[]): FetchMsg | Refused {
  if ((m.length !== 4 && (m.length !== 5 || (m[4] !== true && m[4] !== TAKE))) || !requestIdOk(m[3]))
    return new Refused('malformed', `a fetch that is not [t, ctx, id, requestId, mode? (true | "${TAKE}")]`);
  if (typeof m[2] !== 'string' || !isSessionId(m[2]))
    return new Refused('malformedIds', 'a session id that is not 32 base64url characters');
  return m as unknown as FetchMsg;
}

export function readFetched(m: unknown[]): FetchedMsg | Refused {
  if (
    (m.length !== 4 && (m.length !== 5 || m[4] !== true || m[3] === null)) ||
    !requestIdOk(m[2]) ||
    (m[3] !== null && !Array.isArray(m[3]))
  )
    return new Refused(
      'malformed',
      'a fetch answer that is not [t, ctx, requestId, record | null, granted? (true, with a record)]',
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
