/**
 * A BackupManager's share of membership changes and take-overs: where copies must move, this node
 * (the custodian of the sessions it acts for) sends them to the new holders in acknowledged chunks
 * of stateTransferChunkSize, one chunk per event-loop turn, then RELEASE to the holders they
 * replace; and the start's readiness, SHARE_SENT (a node is ready once every member there when it
 * started sent it its share, or left, or stateTransferTimeoutMs passed). Separate from the manager
 * so its hot path (recipients, fetches, message handlers) stays apart from this background work;
 * rebalance.ts is the pure planner it runs.
 */
import type { Member } from '../channel/types.js';
import type { BackupCounters } from './backup-counters.js';
import { copiesMsg, releaseMsg, shareSentMsg } from './backup-messages.js';
import type { BackupSyncHost } from './backup-sync-host.js';
import type { Placement } from './placement.js';
import { type Chunk, planRebalance, planRehome } from './rebalance.js';
import type { Session } from './session.js';
import { toRecord } from './state-donor.js';

/** What the BackupManager gives its rebalance besides what its sync parts get. */
export interface BackupRebalanceHost extends BackupSyncHost {
  /** The manager's own counters (rebalances, sessionsMoved, copyErrors). */
  readonly backupCounters: BackupCounters;
  readonly distributable: boolean;
  /** A chunk of copies to `to` failed: the periodic repair sends them again. */
  repairFailed(ids: readonly string[], to: string): void;
}

/** The rebalance, restore and start readiness of one BackupManager. */
export class BackupRebalance {
  /** The placement the last rebalance reached: the "before" of the next one. */
  #stable: Placement | undefined;
  #started = false;
  #running = false;
  #again = false;
  /** Sessions whose new copies were not acknowledged yet (underReplicated). */
  readonly pendingCopies = new Set<string>();
  #lastRestoredAt = 0;
  /** Members that sent this node its share (SHARE_SENT). */
  readonly #sharesFrom = new Set<string>();
  #shareWait: (() => void) | undefined;

  constructor(private readonly host: BackupRebalanceHost) {}

  /** A rebalance is under way (or scheduled to run). */
  get running(): boolean {
    return this.#running;
  }

  /** When copies were last restored after a change (0: never). */
  get lastRestoredAt(): number {
    return this.#lastRestoredAt;
  }

  /**
   * Ready once every member serving the context when this node started has sent this node its
   * share (or left); no full state transfer. On timeout: start-cold (logged) or fail, as the
   * DeltaManager's transfer.
   */
  async start(): Promise<void> {
    const host = this.host;
    this.#started = true;
    this.#stable = host.placement();
    const startedAt = Date.now();
    // This node holds nothing yet: its share to every member is sent (members starting together
    // would otherwise wait for each other).
    host.post(host.members(), shareSentMsg(host.contextName));
    const expected = () => host.members().filter((m) => !this.#sharesFrom.has(m.id) && m.startTime <= startedAt);
    if (expected().length === 0) return;
    const deadline = host.config.stateTransferTimeoutMs;
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.#shareWait = undefined;
        resolve(false);
      }, deadline);
      timer.unref();
      this.#shareWait = () => {
        if (expected().length > 0) return;
        clearTimeout(timer);
        this.#shareWait = undefined;
        resolve(true);
      };
    });
    if (ok) return;
    const missing = expected().map((m) => m.name);
    if (host.config.onStateTransferTimeout === 'fail')
      throw new Error(
        `context ${host.contextName}: members ${missing.join(', ')} did not send this node its share of the sessions within stateTransferTimeoutMs (${deadline} ms)`,
      );
    host.logger.warn(
      { missing },
      'starting without the share of some members (stateTransferTimeoutMs): their sessions are fetched when requested',
    );
  }

  /** SHARE_SENT from `id` (checked by the manager). */
  shareSent(id: string): void {
    this.#sharesFrom.add(id);
    this.#shareWait?.();
  }

  /** A member left: it is no longer waited for; its copies move. */
  memberRemoved(): void {
    this.#shareWait?.();
    this.schedule();
  }

  /** Runs a rebalance in the background (once more after the current one, if one runs). */
  schedule(): void {
    const host = this.host;
    if (!this.#started || host.stopped || !host.distributable) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    setImmediate(() => {
      this.#rebalance()
        .catch((err: Error) => host.logger.error({ err }, 'rebalancing failed'))
        .finally(() => {
          this.#running = false;
          if (this.#again) {
            this.#again = false;
            this.schedule();
          }
        });
    });
  }

  /** This node's part of a membership change: copies to new holders (acknowledged), then releases, then SHARE_SENT to joiners. */
  async #rebalance(): Promise<void> {
    const host = this.host;
    const members = host.members();
    const after = host.placement();
    const before = this.#stable ?? after;
    this.#stable = after;
    const joiners = members.filter((m) => !before.has(m.id));
    if (before.ids.length === after.ids.length && before.ids.every((id) => after.has(id))) {
      for (const j of joiners) host.post([j], shareSentMsg(host.contextName));
      return;
    }
    host.backupCounters.rebalances++;
    const me = host.localId;
    const held: { id: string; primary: string }[] = [];
    for (const s of host.sessions.values()) if (s.valid) held.push({ id: s.id, primary: s.ownerId || me });
    const plan = planRebalance({
      self: me,
      held,
      before,
      after,
      backups: host.k,
      chunkSize: host.config.stateTransferChunkSize,
    });
    for (const id of [...plan.adopted, ...plan.orphans]) {
      const s = host.sessions.get(id);
      if (s !== undefined && s.active <= 0) {
        s.ownerId = me;
        s.primary = true;
      }
    }
    await this.restore(plan.sends, plan.releases);
    for (const j of joiners) host.post([j], shareSentMsg(host.contextName));
  }

  /** This node now serves `s`, which `previous` served: its copies follow (background, acknowledged). */
  rehome(s: Session, previous: string, previousDrops = false): void {
    const host = this.host;
    const plan = planRehome(host.placement(), s.id, previous, host.localId, host.k, previousDrops);
    if (plan.sends.length > 0 || plan.releases.length > 0) void this.restore(plan.sends, plan.releases);
  }

  /** Sends copies chunk by chunk (each acknowledged, one per turn), then the releases of the holders they replace. */
  async restore(sends: readonly Chunk[], releases: readonly Chunk[]): Promise<void> {
    const host = this.host;
    const pending = this.pendingCopies;
    for (const c of sends) for (const id of c.ids) pending.add(id);
    let failed = false;
    for (const c of sends) {
      const to = host.members().find((m) => m.id === c.to);
      if (to === undefined || host.stopped) {
        for (const id of c.ids) pending.delete(id);
        continue;
      }
      host.flush(); // a record's stamps must cover its values
      const records = [];
      for (const id of c.ids) {
        const s = host.sessions.get(id);
        if (s?.valid) records.push(toRecord(s));
      }
      if (records.length > 0) {
        try {
          await host.send(to, copiesMsg(host.contextName, records));
          host.backupCounters.sessionsMoved += records.length;
        } catch (err) {
          failed = true;
          host.backupCounters.copyErrors++;
          host.repairFailed(c.ids, c.to); // sent again by the periodic repair
          host.logger.warn({ err: (err as Error).message, to: to.name }, 'sending backup copies failed');
        }
      }
      for (const id of c.ids) pending.delete(id);
      await new Promise<void>((r) => setImmediate(r)); // requests run between chunks
    }
    // Only once every copy arrived: a session never has fewer copies than before the change.
    if (!failed)
      for (const c of releases) {
        const ids: string[] = [];
        const versions: number[] = [];
        for (const id of c.ids) {
          const s = host.sessions.get(id);
          if (s?.valid && s.ownerId === host.localId) {
            ids.push(id);
            versions.push(s.version);
          }
        }
        const to: Member[] = host.members().filter((m) => m.id === c.to);
        if (ids.length > 0) host.post(to, releaseMsg(host.contextName, ids, versions));
      }
    if (!failed && sends.length > 0) this.#lastRestoredAt = Date.now();
  }
}
