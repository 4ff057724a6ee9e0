/**
 * The BackupManager's periodic repair (sessions.repairIntervalMs): without it a copy whose send
 * failed, or that a backup refused or lost, stays missing until the next membership change.
 *
 * Every interval, one pass (never two at once), for the sessions this node serves:
 * 1. the copies known to be missing (a rebalance's or hand-over's send failed, a backup said so)
 *    are sent again to the members placement gives them, in acknowledged chunks;
 * 2. each backup gets the ids and versions of the sessions it should hold from this node
 *    (HOLDING, repair; chunks of stateTransferChunkSize, one per event-loop turn) and answers
 *    WANTED with those it lacks or holds older, which are sent to it (COPIES, acknowledged).
 *
 * A session is under-replicated (stats `underReplicated`) from the moment one of its copies is
 * known missing until a send of it was acknowledged. Each pass costs one id and version per
 * session and backup; nothing is sent for sessions whose backups hold them.
 */
import type { Member } from '../channel/types.js';
import { add, type BackupSyncHost, nextTurn, sendCopies } from './backup-sync-host.js';
import { type HoldingMsg, holdingMsg, Purpose, type WantedMsg, wantedMsg } from './backup-sync-messages.js';

export class BackupRepair {
  /** Session id → the members known to lack its copy. */
  readonly #missing = new Map<string, Set<string>>();
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(private readonly host: BackupSyncHost) {}

  /** Starts the passes (none when sessions.repairIntervalMs is 0). */
  start(): void {
    const every = this.host.config.repairIntervalMs;
    if (every <= 0 || this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.run(), every);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Copies of `ids` to member `to` were not acknowledged: they are sent again by the next pass. */
  failed(ids: readonly string[], to: string): void {
    for (const id of ids) {
      let set = this.#missing.get(id);
      if (set === undefined) this.#missing.set(id, (set = new Set()));
      set.add(to);
    }
  }

  /** Whether `to` is known to lack the copy of `id`. */
  lacks(id: string, to: string): boolean {
    return this.#missing.get(id)?.has(to) === true;
  }

  #restored(ids: readonly string[], to: string): void {
    for (const id of ids) {
      const set = this.#missing.get(id);
      if (set?.delete(to) && set.size === 0) this.#missing.delete(id);
    }
  }

  /** A member left: the rebalance places its copies anew. */
  memberRemoved(id: string): void {
    for (const [sid, set] of this.#missing) if (set.delete(id) && set.size === 0) this.#missing.delete(sid);
  }

  /** The sessions this node serves with a copy known missing, beside `pending` (copies on their way). */
  underReplicated(pending: ReadonlySet<string>): number {
    const me = this.host.localId;
    let n = 0;
    for (const id of pending) if (this.host.sessions.get(id)?.ownerId === me) n++;
    for (const id of this.#missing.keys()) if (!pending.has(id) && this.host.sessions.get(id)?.ownerId === me) n++;
    return n;
  }

  /** One pass (a no-op while one runs or the manager stops). */
  async run(): Promise<void> {
    if (this.#running || this.host.stopped) return;
    this.#running = true;
    try {
      this.host.counters.repairRuns++;
      await this.#resend();
      await this.#check();
    } catch (err) {
      this.host.logger.warn({ err: (err as Error).message }, 'repairing backup copies failed');
    } finally {
      this.#running = false;
    }
  }

  /** The members placement gives each session this node serves, of those in view. */
  #backupsByMember(filter?: (id: string) => readonly string[] | undefined): Map<string, string[]> {
    const host = this.host;
    const me = host.localId;
    const p = host.placement();
    const byMember = new Map<string, string[]>();
    for (const s of host.sessions.values()) {
      if (!s.valid || !s.announced || s.ownerId !== me) continue;
      const wanted = filter?.(s.id);
      for (const b of p.backups(s.id, me, host.k))
        if (wanted === undefined || wanted.includes(b)) add(byMember, b, s.id);
    }
    return byMember;
  }

  /** Step 1: the copies known missing, to the members that should still hold them. */
  async #resend(): Promise<void> {
    if (this.#missing.size === 0) return;
    const byMember = this.#backupsByMember((id) => {
      const set = this.#missing.get(id);
      return set === undefined ? [] : [...set];
    });
    for (const [to, ids] of byMember) await this.#send(to, ids);
    // Those no longer to be held where they were missing (placement changed, the session ended or moved).
    const me = this.host.localId;
    const p = this.host.placement();
    for (const [id, set] of this.#missing) {
      const s = this.host.sessions.get(id);
      if (!s?.valid || s.ownerId !== me) this.#missing.delete(id);
      else for (const to of set) if (!p.isHolder(id, me, this.host.k, to)) set.delete(to);
      if (set.size === 0) this.#missing.delete(id);
    }
  }

  async #send(toId: string, ids: readonly string[]): Promise<void> {
    const to = this.host.members().find((m) => m.id === toId);
    if (to === undefined || this.host.stopped) return;
    try {
      this.host.counters.copiesRepaired += await sendCopies(this.host, to, ids);
      this.#restored(ids, toId);
    } catch (err) {
      this.failed(ids, toId);
      this.host.logger.warn({ to: to.name, err: (err as Error).message }, 'repairing backup copies failed');
    }
  }

  /** Step 2: each backup says which of its copies it lacks or holds older (WANTED: {@link onWanted}). */
  async #check(): Promise<void> {
    const host = this.host;
    const size = host.config.stateTransferChunkSize;
    for (const [toId, ids] of this.#backupsByMember()) {
      for (let i = 0; i < ids.length; i += size) {
        const to = host.members().find((m) => m.id === toId);
        if (to === undefined || host.stopped) break;
        const chunk: string[] = [];
        const versions: number[] = [];
        const owners: string[] = [];
        for (const id of ids.slice(i, i + size)) {
          const s = host.sessions.get(id);
          if (!(s?.valid && s.ownerId === host.localId)) continue;
          chunk.push(id);
          versions.push(s.version);
          owners.push(host.localId);
        }
        if (chunk.length > 0)
          await host.send(to, holdingMsg(host.contextName, Purpose.REPAIR, chunk, versions, owners));
        await nextTurn();
      }
    }
  }

  /** HOLDING (repair) from the node serving these sessions: WANTED with those missing here or older. */
  onHolding(h: HoldingMsg, from: Member): void {
    const host = this.host;
    const wanted: string[] = [];
    const ids = h[3];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (host.endedLately(id)) continue;
      const s = host.sessions.get(id);
      if (s === undefined || s.version < h[4][i]!) wanted.push(id);
    }
    if (wanted.length > 0) host.post([from], wantedMsg(host.contextName, wanted));
  }

  /** WANTED: the copies the member lacks, of the sessions this node serves and placement gives it. */
  onWanted(w: WantedMsg, from: Member): void {
    const host = this.host;
    const me = host.localId;
    const p = host.placement();
    const ids: string[] = [];
    for (const id of w[2]) {
      const s = host.sessions.get(id);
      if (s?.valid && s.ownerId === me && p.isHolder(id, me, host.k, from.id)) ids.push(id);
      else if (s?.valid) host.refuse(from, 'wanted a copy this node does not serve or placement does not give it');
    }
    if (ids.length === 0) return;
    this.failed(ids, from.id); // under-replicated until the copies arrived
    void this.#send(from.id, ids);
  }
}
