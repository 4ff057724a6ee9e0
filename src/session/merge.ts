/**
 * Merge rules that need no manager: a whole session record (state transfer, repair) merged into
 * this node's copy by the stamps of its attributes.
 */
import type { SessionRecord } from './messages.js';
import { Attribute, newer, type ReceivedValue, type Session, storeReceived } from './session.js';

/**
 * Two writes to one attribute on two nodes, neither having seen the other (e.g. both sides of a
 * partition): `local` and `remote` are the writers' ids, `incomingWins` whether the record's
 * write is the newer one (the one kept).
 */
export type RecordConflict = (name: string, local: string, remote: string, incomingWins: boolean) => void;

/**
 * Merges record `r` (checked by readRecord; `incoming` its values checked by receivedValues) into
 * `s`: each attribute whose stamp is newer than this node's, and not changed here since the last
 * replication, is taken; the version moves on, and with it the owner the record names. Returns
 * the bytes of the values the record carried. With the record's bases (r[10]), an attribute
 * written on both nodes without either write having seen the other is reported to `onConflict`
 * (the newer write is kept all the same, as for deltas).
 */
export function mergeRecord(
  s: Session,
  r: SessionRecord,
  incoming: readonly (ReceivedValue | null)[],
  onConflict?: RecordConflict,
): number {
  // Indexed loads, not destructuring (which runs the iterator protocol per record).
  const names = r[5];
  const stampV = r[7];
  const stampW = r[8];
  const bases = r[10];
  let bytes = 0;
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    const v = stampV[i]!;
    const w = stampW[i]!;
    // Unknown (an older sender): count it as having seen everything before it.
    const base = bases === undefined ? v : bases[i]!;
    const a = s.attributes.get(name);
    // null = removed, with the stamp of the removal (so an older write cannot bring it back)
    const value = incoming[i]!;
    if (value !== null) bytes += value.bytes.length;
    if (a === undefined) {
      const attr = new Attribute(undefined, v, w, value === null);
      if (value !== null) storeReceived(attr, value);
      attr.b = base;
      s.attributes.set(name, attr);
      continue;
    }
    const incomingNewer = newer(v, w, a.v, a.w);
    if (onConflict !== undefined && a.w !== w && a.w !== '' && bases !== undefined) {
      // Concurrent: the newer write had not seen the older one (its base is below it).
      if (incomingNewer ? base < a.v : a.b < v) onConflict(name, a.w, w, incomingNewer && !s.dirty?.has(name));
    }
    if (incomingNewer && !s.dirty?.has(name)) {
      a.v = v;
      a.w = w;
      a.b = base;
      a.removed = value === null;
      if (value !== null) storeReceived(a, value);
      else {
        a.bytes = undefined;
        a.decoded = false;
        a.value = undefined;
      }
    }
  }
  if (r[4] > s.version) {
    s.version = r[4];
    if (s.active <= 0) s.ownerId = r[9];
  }
  return bytes;
}

/**
 * The fence rule (a forced take-over, message TAKEN): the new owner's copy `r`, at the fence
 * version `r[4]`, is the truth for everything older than the fence. Every attribute here stamped
 * below the fence that differs from the record takes the record's value and stamp, or is dropped
 * when the record does not hold it; the record's attributes missing here are added. Attributes
 * stamped at or above the fence (written after the take-over) stay. Changes made here and not
 * replicated yet are dropped with `dropLocal` (on the fenced owner, once its requests ended), else
 * kept (they will be stamped newer and win). Returns how many attributes written by `fenced` (or
 * dropped local changes) were undone.
 */
export function revertTo(
  s: Session,
  r: SessionRecord,
  incoming: readonly (ReceivedValue | null)[],
  fenced: string,
  dropLocal: boolean,
): number {
  const fence = r[4];
  const names = r[5];
  const stampV = r[7];
  const stampW = r[8];
  const index = new Map<string, number>();
  for (let i = 0; i < names.length; i++) index.set(names[i]!, i);
  let undone = 0;
  for (const [name, a] of s.attributes) {
    const local = a.w === '' || s.dirty?.has(name) === true;
    if (local ? !dropLocal : a.v >= fence) continue;
    const i = index.get(name);
    if (!local && i !== undefined && a.v === stampV[i] && a.w === stampW[i]) continue;
    if (local || a.w === fenced) undone++;
    if (i === undefined) s.attributes.delete(name);
    else setFrom(a, stampV[i]!, stampW[i]!, incoming[i]!);
  }
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    if (s.attributes.has(name)) continue;
    const attr = new Attribute(undefined, 0, '');
    setFrom(attr, stampV[i]!, stampW[i]!, incoming[i]!);
    s.attributes.set(name, attr);
  }
  if (dropLocal) {
    s.dirty = undefined;
    s.handedOut = undefined;
    s.maxInactiveDirty = false;
  }
  if (!s.maxInactiveDirty) s.maxInactiveInterval = r[3];
  if (fence > s.version) s.version = fence;
  return undone;
}

function setFrom(a: Attribute, v: number, w: string, value: ReceivedValue | null): void {
  a.v = v;
  a.w = w;
  a.b = v;
  a.removed = value === null;
  if (value !== null) storeReceived(a, value);
  else {
    a.bytes = undefined;
    a.decoded = false;
    a.value = undefined;
  }
}
