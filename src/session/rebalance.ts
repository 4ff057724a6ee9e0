/**
 * Rebalance planning for the BackupManager (pure): when the members serving a context change,
 * which of the sessions this node holds it must copy to whom, and which old holders it then tells
 * to let their copy go. Exactly one node acts for each session, so copies are neither sent twice
 * nor released twice:
 *
 * - the session's primary, when it is still a member;
 * - else (the primary is gone) its *custodian*: the first of its old backups, in placement order,
 *   that is still a member. The custodian serves as the session's primary for placement until a
 *   request makes some node its primary (that node then takes it over).
 *
 * The acting node sends the session to the new holders that did not hold it, and releases the old
 * holders that no longer should, in chunks of at most `chunkSize` ids per message. A release is
 * sent only after the copies it replaces were acknowledged (the manager's job), so a session never
 * has fewer copies than before the change.
 */
import type { Placement } from './placement.js';

/** A session this node holds, with the primary it knows of (a member id). */
export interface HeldSession {
  readonly id: string;
  readonly primary: string;
}

export interface RebalanceInput {
  /** This node's member id. */
  readonly self: string;
  readonly held: Iterable<HeldSession>;
  /** Placement over the members serving the context before the change, and after it. */
  readonly before: Placement;
  readonly after: Placement;
  /** Backups wanted per session (k). */
  readonly backups: number;
  /** Most session ids in one chunk (≥ 1). */
  readonly chunkSize: number;
}

/** One message's worth of work: session ids for one member. */
export interface Chunk {
  readonly to: string;
  readonly ids: readonly string[];
}

export interface RebalancePlan {
  /** Copies to send (the receiver becomes a backup holder). */
  readonly sends: readonly Chunk[];
  /** Old holders to tell to drop their copy, once the sends are acknowledged. */
  readonly releases: readonly Chunk[];
  /** Sessions whose primary is gone and that this node now keeps as their custodian (acting primary). */
  readonly adopted: readonly string[];
  /** Sessions that lost every holder except this node, which is not among their new holders: it keeps them and serves as custodian. */
  readonly orphans: readonly string[];
}

/** The node that acts for a session after the change: its primary if still a member, else its custodian. */
export function actingPrimary(
  id: string,
  primary: string,
  before: Placement,
  after: Placement,
  k: number,
): string | undefined {
  if (after.has(primary)) return primary;
  for (const b of before.backups(id, primary, k)) if (after.has(b)) return b;
  return undefined;
}

/**
 * `self` now serves session `id`, which `previous` served: its new backups that did not hold it get
 * a copy, the old holders that no longer should are released. `previousDrops`: the previous
 * owner dropped its copy itself when it handed the session over (not released again).
 */
export function planRehome(
  p: Placement,
  id: string,
  previous: string,
  self: string,
  k: number,
  previousDrops = false,
): { sends: Chunk[]; releases: Chunk[] } {
  const old = p.has(previous) ? p.holders(id, previous, k) : p.backups(id, undefined, k);
  const now = p.holders(id, self, k);
  const sends: Chunk[] = [];
  const releases: Chunk[] = [];
  for (const to of now) if (to !== self && !old.includes(to)) sends.push({ to, ids: [id] });
  for (const from of old)
    if (from !== self && !now.includes(from) && !(previousDrops && from === previous))
      releases.push({ to: from, ids: [id] });
  return { sends, releases };
}

/** Plans this node's part of a rebalance. */
export function planRebalance(input: RebalanceInput): RebalancePlan {
  const { self, before, after, backups: k } = input;
  const chunkSize = Math.max(1, Math.floor(input.chunkSize));
  const sends = new Map<string, string[]>();
  const releases = new Map<string, string[]>();
  const adopted: string[] = [];
  const orphans: string[] = [];
  for (const s of input.held) {
    const oldHolders = before.holders(s.id, s.primary, k);
    let acting = actingPrimary(s.id, s.primary, before, after, k);
    if (acting === undefined) {
      // No known holder survived but this node holds the session: it keeps it.
      acting = self;
      orphans.push(s.id);
    } else if (acting !== self) continue;
    else if (acting !== s.primary) adopted.push(s.id);
    const newBackups = after.backups(s.id, acting, k);
    for (const to of newBackups) if (to !== self && !oldHolders.includes(to)) add(sends, to, s.id);
    for (const old of oldHolders)
      if (old !== self && after.has(old) && !newBackups.includes(old)) add(releases, old, s.id);
  }
  return { sends: chunked(sends, chunkSize), releases: chunked(releases, chunkSize), adopted, orphans };
}

function add(map: Map<string, string[]>, to: string, id: string): void {
  const list = map.get(to);
  if (list === undefined) map.set(to, [id]);
  else list.push(id);
}

function chunked(map: Map<string, string[]>, size: number): Chunk[] {
  const out: Chunk[] = [];
  for (const to of [...map.keys()].sort()) {
    const ids = map.get(to)!;
    for (let i = 0; i < ids.length; i += size) out.push({ to, ids: ids.slice(i, i + size) });
  }
  return out;
}
