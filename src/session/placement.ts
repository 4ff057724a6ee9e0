/**
 * Where a session's backup copies live (BackupManager): rendezvous hashing (highest random
 * weight, Thaler & Ravishankar) over the members serving the context, with host and zone
 * anti-affinity.
 *
 * Why rendezvous and not a ring or a fixed slot table: a context is served by a handful to a few
 * dozen members, so scoring every member per lookup costs less than a ring's binary search, needs
 * no virtual nodes to be even, and no table that members must agree on: every node computes the
 * same holders from the same member set. A member leaving moves only the copies it held (spread
 * over the survivors in proportion), a member joining takes only the copies it now ranks highest
 * for (1/(n+1) of each member's), which is the minimum; a fixed slot table moves whole slots and
 * is only as even as slots/members allows.
 *
 * The ranking of members for a session depends on the session id alone, never on its primary
 * (the node that serves it, which the balancer chooses): the backups are the best-ranked members
 * other than the primary. When a backup takes over as primary, the other backups stay where they
 * are and one more member is added; when a primary moves to a non-holder, at most one copy moves.
 *
 * Anti-affinity: copies prefer members on hosts (and, with zones, zones) that no other copy of
 * the session (primary included) is on; when there are not enough such members, the best-ranked
 * remaining ones fill up, so the factor is kept whenever enough members exist.
 */

/** A member as placement sees it. */
export interface PlacementMember {
  /** Member id (stable for a process: 32 hex characters in clowder). */
  readonly id: string;
  /** The machine it runs on (anti-affinity: copies avoid sharing one). */
  readonly host: string;
  /** Optional failure zone (rack, availability zone); used when the placement is zone-aware. */
  readonly zone?: string | undefined;
}

export interface PlacementOptions {
  /** Prefer copies in zones no other copy of the session is in (default true; members without a zone share one). */
  readonly zoneAware?: boolean;
}

/** murmur3's 32-bit finalizer: a bijection with full avalanche. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 32-bit hash of a string (FNV-1a over UTF-16 code units, then fmix32); no allocation. */
export function hashString(s: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** A member's weight for a session: the session hash and the member hash mixed (commutative inputs, different seeds). */
function weight(sessionHash: number, memberHash: number): number {
  return fmix32((sessionHash ^ memberHash) + 0x9e3779b9);
}

/**
 * Anti-affinity tiers, strictest first: a backup is taken from the first tier that still has a
 * candidate. ZONE_ALL: zone and host shared with no copy; ZONE_PRIMARY: neither the primary's zone
 * nor its host; HOST_ALL: host shared with no copy; HOST_PRIMARY: not the primary's host; ANY.
 */
const ZONE_ALL = 0;
const ZONE_PRIMARY = 1;
const HOST_ALL = 2;
const HOST_PRIMARY = 3;
const ANY = 4;
const ZONE_TIERS = [ZONE_ALL, ZONE_PRIMARY, HOST_ALL, HOST_PRIMARY, ANY] as const;
const HOST_TIERS = [HOST_ALL, HOST_PRIMARY, ANY] as const;

/**
 * An immutable placement over one member set. Build one per membership change; lookups then do
 * no allocation (`backupsInto`), only `backups()`/`holders()` allocate their result array.
 */
export class Placement {
  /** Member ids, sorted (the tie-break order, the same on every node). */
  readonly ids: readonly string[];
  /** Whether zones take part (asked for, and more than one zone among the members). */
  readonly zoneAware: boolean;
  readonly #index = new Map<string, number>();
  readonly #hash: Uint32Array;
  readonly #host: Int32Array;
  readonly #zone: Int32Array;
  readonly #scores: Uint32Array;
  #scratch: Int32Array;

  constructor(members: readonly PlacementMember[], options: PlacementOptions = {}) {
    const sorted = [...new Map(members.map((m) => [m.id, m])).values()].sort((a, b) =>
      a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
    );
    const n = sorted.length;
    this.ids = Object.freeze(sorted.map((m) => m.id));
    this.#hash = new Uint32Array(n);
    this.#host = new Int32Array(n);
    this.#zone = new Int32Array(n);
    this.#scores = new Uint32Array(n);
    this.#scratch = new Int32Array(Math.max(1, n));
    const hosts = new Map<string, number>();
    const zones = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const m = sorted[i]!;
      this.#index.set(m.id, i);
      this.#hash[i] = hashString(m.id, 0x5bd1e995);
      this.#host[i] = intern(hosts, m.host);
      this.#zone[i] = intern(zones, m.zone ?? '');
    }
    // One zone (or none configured): the zone tiers could never choose anyone.
    this.zoneAware = (options.zoneAware ?? true) && zones.size > 1;
  }

  /** Number of members. */
  get size(): number {
    return this.ids.length;
  }

  /** Index of a member id, or -1. */
  indexOf(id: string): number {
    return this.#index.get(id) ?? -1;
  }

  has(id: string): boolean {
    return this.#index.has(id);
  }

  /** How many backups a session gets with `k` wanted: min(k, members − 1), or min(k, members) without a member primary. */
  backupCount(k: number, primaryIsMember = true): number {
    return Math.max(0, Math.min(k, this.size - (primaryIsMember ? 1 : 0)));
  }

  /**
   * Writes the indices of the session's backups into `out` (best first) and returns how many:
   * `backupCount(k)`. `primary` is the primary's index, or -1 when it is not a member.
   * Allocation-free when `out` is large enough (length ≥ the count).
   */
  backupsInto(sessionId: string, primary: number, k: number, out: Int32Array): number {
    const n = this.size;
    const want = this.backupCount(k, primary >= 0);
    if (want === 0) return 0;
    const h = hashString(sessionId);
    const scores = this.#scores;
    const hashes = this.#hash;
    for (let i = 0; i < n; i++) scores[i] = weight(h, hashes[i]!);
    let count = 0;
    const tiers = this.zoneAware ? ZONE_TIERS : HOST_TIERS;
    for (let t = 0; t < tiers.length && count < want; t++) {
      const tier = tiers[t]!;
      while (count < want) {
        let best = -1;
        let bestScore = -1;
        for (let i = 0; i < n; i++) {
          if (i === primary) continue;
          const s = scores[i]!;
          // Ties go to the lower index (sorted ids): the same choice on every node.
          if (s <= bestScore) continue;
          if (this.#taken(i, out, count) || !this.#eligible(i, tier, primary, out, count)) continue;
          best = i;
          bestScore = s;
        }
        if (best < 0) break;
        out[count++] = best;
      }
    }
    return count;
  }

  #taken(i: number, out: Int32Array, count: number): boolean {
    for (let j = 0; j < count; j++) if (out[j] === i) return true;
    return false;
  }

  /** Whether member `i` passes the anti-affinity `tier` against the primary and the copies chosen so far. */
  #eligible(i: number, tier: number, primary: number, out: Int32Array, count: number): boolean {
    if (tier === ANY) return true;
    const host = this.#host[i]!;
    const zone = this.#zone[i]!;
    const zoneToo = tier === ZONE_ALL || tier === ZONE_PRIMARY;
    if (primary >= 0 && (this.#host[primary] === host || (zoneToo && this.#zone[primary] === zone))) return false;
    if (tier === ZONE_PRIMARY || tier === HOST_PRIMARY) return true;
    for (let j = 0; j < count; j++) {
      const o = out[j]!;
      if (this.#host[o] === host || (zoneToo && this.#zone[o] === zone)) return false;
    }
    return true;
  }

  /** The session's backups' member ids (best first). `primaryId` need not be a member. */
  backups(sessionId: string, primaryId: string | undefined, k: number): string[] {
    const primary = primaryId === undefined ? -1 : this.indexOf(primaryId);
    const out = this.#scratchFor(k);
    const c = this.backupsInto(sessionId, primary, k, out);
    const ids: string[] = new Array(c);
    for (let i = 0; i < c; i++) ids[i] = this.ids[out[i]!]!;
    return ids;
  }

  /** Primary first (when it is a member), then the backups. */
  holders(sessionId: string, primaryId: string | undefined, k: number): string[] {
    const b = this.backups(sessionId, primaryId, k);
    return primaryId !== undefined && this.has(primaryId) ? [primaryId, ...b] : b;
  }

  /** Whether member `memberId` should hold a copy of the session whose primary is `primaryId` (primary included). */
  isHolder(sessionId: string, primaryId: string | undefined, k: number, memberId: string): boolean {
    if (memberId === primaryId) return this.has(memberId);
    const m = this.indexOf(memberId);
    if (m < 0) return false;
    const primary = primaryId === undefined ? -1 : this.indexOf(primaryId);
    const out = this.#scratchFor(k);
    const c = this.backupsInto(sessionId, primary, k, out);
    for (let i = 0; i < c; i++) if (out[i] === m) return true;
    return false;
  }

  #scratchFor(k: number): Int32Array {
    if (this.#scratch.length < k) this.#scratch = new Int32Array(k);
    return this.#scratch;
  }
}

function intern(table: Map<string, number>, key: string): number {
  let v = table.get(key);
  if (v === undefined) {
    v = table.size;
    table.set(key, v);
  }
  return v;
}
