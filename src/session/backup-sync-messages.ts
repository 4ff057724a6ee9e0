/**
 * The messages that keep a BackupManager's copies in agreement outside membership changes
 * (layouts in messages.ts: HOLDING, MERGE_COPIES, WANTED): the exchange with a member back after
 * a silence (backup-rejoin.ts) and the periodic repair (backup-repair.ts). Builders and checked
 * readers; records inside are checked by readRecord when applied, one by one.
 */
import { MAX_CHUNK } from './backup-messages.js';
import { isSessionId } from './ids.js';
import { Refused } from './message-readers.js';
import { Msg, type SessionRecord } from './messages.js';

/** Why a HOLDING is sent: a rejoin exchange, or a repair check from the node serving the sessions. */
export const Purpose = { REJOIN: 0, REPAIR: 1 } as const;
export type Purpose = (typeof Purpose)[keyof typeof Purpose];

export type HoldingMsg = readonly [
  type: typeof Msg.HOLDING,
  ctx: string,
  purpose: Purpose,
  ids: readonly string[],
  versions: readonly number[],
  owners: readonly string[],
];
export type MergeCopiesMsg = readonly [
  type: typeof Msg.MERGE_COPIES,
  ctx: string,
  records: readonly unknown[],
  ended: readonly string[],
];
export type WantedMsg = readonly [type: typeof Msg.WANTED, ctx: string, ids: readonly string[]];

export function holdingMsg(
  ctx: string,
  purpose: Purpose,
  ids: readonly string[],
  versions: readonly number[],
  owners: readonly string[],
): HoldingMsg {
  return [Msg.HOLDING, ctx, purpose, ids, versions, owners];
}
export function mergeCopiesMsg(ctx: string, records: SessionRecord[], ended: string[]): MergeCopiesMsg {
  return [Msg.MERGE_COPIES, ctx, records, ended];
}
export function wantedMsg(ctx: string, ids: readonly string[]): WantedMsg {
  return [Msg.WANTED, ctx, ids];
}

const MEMBER_ID = /^[\x21-\x7e]{0,64}$/;

function idsOk(ids: unknown, min: number): ids is string[] {
  if (!Array.isArray(ids) || ids.length < min || ids.length > MAX_CHUNK) return false;
  for (const id of ids) if (typeof id !== 'string' || !isSessionId(id)) return false;
  return true;
}

export function readHolding(m: unknown[]): HoldingMsg | Refused {
  const [, , purpose, ids, versions, owners] = m;
  if (
    m.length !== 6 ||
    (purpose !== Purpose.REJOIN && purpose !== Purpose.REPAIR) ||
    !Array.isArray(ids) ||
    ids.length === 0 ||
    ids.length > MAX_CHUNK ||
    !Array.isArray(versions) ||
    versions.length !== ids.length ||
    !Array.isArray(owners) ||
    owners.length !== ids.length
  )
    return new Refused(
      'malformed',
      `a holding list that is not [t, ctx, purpose, ids (1 to ${MAX_CHUNK}), versions, owners]`,
    );
  for (const v of versions)
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      return new Refused('malformed', 'a holding version that is not a non-negative integer');
  for (const o of owners)
    if (typeof o !== 'string' || !MEMBER_ID.test(o))
      return new Refused('malformedIds', 'an owner id that is not a member id');
  if (!idsOk(ids, 1)) return new Refused('malformedIds', 'a session id that is not 32 base64url characters');
  return m as unknown as HoldingMsg;
}

export function readMergeCopies(m: unknown[]): MergeCopiesMsg | Refused {
  if (m.length !== 4 || !Array.isArray(m[2]) || m[2].length > MAX_CHUNK || !Array.isArray(m[3]))
    return new Refused('malformed', `merge copies that are not [t, ctx, records (0 to ${MAX_CHUNK}), ended ids]`);
  if (!idsOk(m[3], 0)) return new Refused('malformedIds', 'an ended id that is not 32 base64url characters');
  return m as unknown as MergeCopiesMsg;
}

export function readWanted(m: unknown[]): WantedMsg | Refused {
  if (m.length !== 3) return new Refused('malformed', `a wanted list that is not [t, ctx, ids (1 to ${MAX_CHUNK})]`);
  if (!idsOk(m[2], 1)) return new Refused('malformedIds', `wanted ids that are not 1 to ${MAX_CHUNK} session ids`);
  return m as unknown as WantedMsg;
}
