/**
 * Merge rules that need no manager or socket, one rule for every path: a local write stamps what
 * it changed ({@link stamp}); remote writes apply by stamps ({@link applyWrites}); a whole
 * session record (state transfer, repair) merges by the stamps of its attributes
 * ({@link mergeRecord}); a forced take-over reverts to the new owner's copy ({@link revertTo}).
 */
import type { ApartWrites } from './forks.js';
import type { SessionRecord } from './messages.js';
import { Attribute, newer, type ReceivedValue, type Session, storeReceived } from './session.js';

/**
 * A local write: the session's version moves on and every attribute it writes (all of them the
 * first time, else those changed since the last write: `changed`, when the caller listed them
 * already, else `s.dirty`) gets the stamp (new version, `writer`, base = the version before).
 * Returns the new version.
 */
export function stamp(s: Session, writer: string, changed?: readonly string[]): number {
  const base = s.version;
  const v = ++s.version;
  if (s.announced && changed !== undefined) {
    for (let i = 0; i < changed.length; i++) stampOne(s.attributes.get(changed[i]!), v, writer, base);
  } else {
    const written = s.announced ? s.dirty : s.attributes.keys();
    if (written !== undefined) for (const name of written) stampOne(s.attributes.get(name), v, writer, base);
  }
  s.dirty = undefined;
  s.maxInactiveDirty = false;
  return v;
}

function stampOne(a: Attribute | undefined, v: number, writer: string, base: number): void {
  if (a === undefined) return;
  a.v = v;
  a.w = writer;
  a.b = base;
}

/** Nobody to tell: the stamps move on as if the write had been sent (a later member gets them by transfer). */
export function stampAlone(s: Session, writer: string): void {
  if (s.announced && s.dirty === undefined && !s.maxInactiveDirty) return;
  stamp(s, writer);
  s.announced = true;
}

/** What applying remote writes reports (the manager's listeners and counters). */
export interface WriteEvents {
  /** This node's id: the writer of its local, unreplicated changes. */
  readonly localId: string;
  /** Whether attribute listeners are told of replicated changes (notifyListenersOnReplication). */
  readonly notify: boolean;
  /** Two writes to `name` that had not seen each other; `incomingWins` says whose value stays. */
  conflict(s: Session, name: string, localWriter: string, remoteWriter: string, incomingWins: boolean): void;
  /** An attribute added, replaced or removed by a remote write (only when `notify`). */
  changed(s: Session, name: string, kind: 'added' | 'replaced' | 'removed', a: Attribute | undefined): void;
  /** A write that changed nothing here (all of it older than this node's copy). */
  stale(): void;
}

/**
 * Applies the attribute writes of one remote write stamped (version, writer), made on top of
 * version `base` (-1: unknown, a CREATED): each is taken when newer than this node's and not
 * overwritten here since the last replication; two writes to the same attribute that had not
 * seen each other are reported as a conflict (the newer stamp wins on every node). The session's
 * version moves on, and with a newer version, unless a request here uses it, its owner becomes
 * the writer.
 */
export function applyWrites(
  ev: WriteEvents,
  s: Session,
  version: number,
  base: number,
  writer: string,
  names: readonly string[],
  incoming: readonly (ReceivedValue | null)[],
  removed: readonly string[],
  now: number,
): void {
  let applied = 0;
  const notify = ev.notify;
  for (let i = 0; i < names.length + removed.length; i++) {
    const isRemove = i >= names.length;
    const name = isRemove ? removed[i - names.length]! : names[i]!;
    const a = s.attributes.get(name);
    if (a !== undefined && s.dirty?.has(name)) {
      // A local write not yet replicated: it will be stamped newer than this and win everywhere.
      // A conflict only if the local write had not seen this one (newer than the value it
      // replaced); an older one merely arrived late, e.g. from a former owner two hand-overs ago.
      // None either when this node lost the session meanwhile: its write will be dropped.
      if (s.revert === undefined && newer(version, writer, a.v, a.w)) ev.conflict(s, name, ev.localId, writer, false);
      continue;
    }
    if (a !== undefined) {
      if (!newer(version, writer, a.v, a.w)) {
        // Older than ours: a conflict only if our write had not seen it (else it was merely reordered).
        if (a.w !== writer && a.w !== '' && a.b < version && base >= 0) ev.conflict(s, name, a.w, writer, false);
        continue;
      }
      // Newer: a conflict only if it had not seen our write.
      if (a.w !== writer && a.w !== '' && base >= 0 && base < a.v) ev.conflict(s, name, a.w, writer, true);
      const existed = !a.removed;
      a.v = version;
      a.w = writer;
      a.b = base < 0 ? version : base;
      a.decoded = false;
      a.value = undefined;
      if (isRemove) {
        a.removed = true;
        a.bytes = undefined;
        if (notify && existed) ev.changed(s, name, 'removed', undefined);
      } else {
        a.removed = false;
        storeReceived(a, incoming[i]!);
        if (notify) ev.changed(s, name, existed ? 'replaced' : 'added', a);
      }
      s.handedOut?.delete(name);
    } else {
      const attr = new Attribute(undefined, version, writer, isRemove);
      if (!isRemove) storeReceived(attr, incoming[i]!);
      attr.b = base < 0 ? version : base;
      s.attributes.set(name, attr);
      if (notify && !isRemove) ev.changed(s, name, 'added', attr);
    }
    applied++;
  }
  if (applied === 0 && version <= s.version && names.length + removed.length > 0) ev.stale();
  if (version > s.version) {
    s.version = version;
    if (s.active <= 0) {
      // The writer served the last request: it owns the session now.
      s.ownerId = writer;
      s.primary = false;
    }
  }
  s.lastAccessedTime = Math.max(s.lastAccessedTime, now);
}

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
 * (the newer write is kept all the same, as for deltas). With `apart` (a record from a member
 * that was apart, forks.ts), an attribute changed after the fork both here, by a member not apart,
 * and in the record, by a member apart, is a conflict whatever the bases say.
 */
export function mergeRecord(
  s: Session,
  r: SessionRecord,
  incoming: readonly (ReceivedValue | null)[],
  onConflict?: RecordConflict,
  apart?: ApartWrites,
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
    if (onConflict !== undefined && a.w !== w && a.w !== '') {
      // Concurrent: the newer write had not seen the older one (its base is below it), or both
      // were written on either side of a partition after it began.
      const concurrent =
        (bases !== undefined && (incomingNewer ? base < a.v : a.b < v)) ||
        (apart !== undefined && a.v > apart.fork && v > apart.fork && apart.apart(w) && !apart.apart(a.w));
      if (concurrent) onConflict(name, a.w, w, incomingNewer && !s.dirty?.has(name));
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
