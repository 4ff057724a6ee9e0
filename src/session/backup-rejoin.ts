/**
 * A member back after a silence (a pause, a healed partition), under the BackupManager: both
 * sides may have served and written the same sessions, created new ones, or invalidated some.
 * A rebalance only moves copies by placement; this exchange merges what diverged, by stamps.
 *
 * It runs on both sides (the channel's `memberRejoined` on the side that noticed, MERGE_REQUEST
 * on the other: rejoin-merge.ts), each side driving its half:
 *
 * 1. HOLDING (rejoin): the ids, versions and owners of the sessions this node holds, in chunks of
 *    stateTransferChunkSize. Before acknowledging a chunk the member answers with MERGE_COPIES:
 *    its own copies of the sessions it holds too, and the ids it invalidated (which end here).
 * 2. MERGE_COPIES to the member: this node's copies of the sessions it holds too, and of those
 *    placement (with the owner this node knows) gives it. Merged there by stamps.
 *
 * So only sessions both hold, or that one holds and placement gives the other, travel. A record
 * merges by stamps (merge.ts): the newer write of each attribute wins, conflicts are counted and
 * reported (`conflict`), a tombstone keeps an invalidated session away. Two sides that served one
 * session during the split end with equal versions but different owners: the greater owner id
 * serves it ({@link resolveOwner}), the same rule on every node whatever order copies arrive in.
 * 3. Settle: for the sessions this node serves after the merge that the member holds but should
 *    not, copies to their placement holders first (acknowledged), then RELEASE to the member, so
 *    each session is back on exactly 1 + k nodes and never on fewer.
 */
import type { Member } from '../channel/types.js';
import { add, type BackupSyncHost, chunked, nextTurn, recordsOf } from './backup-sync-host.js';
import { type HoldingMsg, holdingMsg, type MergeCopiesMsg, mergeCopiesMsg, Purpose } from './backup-sync-messages.js';
import { Refused, readRecord } from './message-readers.js';
import type { SessionRecord } from './messages.js';
import type { Session } from './session.js';

interface Run {
  /** Sessions the member holds too (it answered with its copy). */
  readonly both: Set<string>;
  /** Asked again while running: run once more at the end. */
  again: boolean;
}

/**
 * After a record merged into `s` (which had `version` and `owner` before): at equal versions the
 * greater owner id serves the session (a version above this node's already named its owner).
 */
export function resolveOwner(s: Session, version: number, owner: string, r: SessionRecord, localId: string): void {
  const theirs = r[9];
  if (r[4] !== version || theirs === owner || theirs <= owner || s.active > 0 || !s.valid) return;
  s.ownerId = theirs;
  s.primary = theirs === localId;
}

export class BackupRejoin {
  /** Exchanges this node drives, by member id. */
  readonly #runs = new Map<string, Run>();

  constructor(private readonly host: BackupSyncHost) {}

  /** `m` is back after a silence: exchange with it (once at a time per member; again when asked meanwhile). */
  start(m: Member): boolean {
    const running = this.#runs.get(m.id);
    if (running !== undefined) {
      running.again = true;
      return false;
    }
    const run: Run = { both: new Set(), again: false };
    this.#runs.set(m.id, run);
    this.host.counters.rejoinExchanges++;
    this.host.logger.info({ member: m.name }, 'a member is back after a silence: merging the copies both hold');
    void this.#run(m, run)
      .catch((err: Error) =>
        this.host.logger.warn(
          { member: m.name, err: err.message },
          'merging with a member back after a silence failed',
        ),
      )
      .finally(() => {
        this.#runs.delete(m.id);
        if (run.again && !this.host.stopped && this.#inView(m.id)) this.start(m);
      });
    return true;
  }

  #inView(id: string): boolean {
    return this.host.members().some((x) => x.id === id);
  }

  async #run(m: Member, run: Run): Promise<void> {
    const host = this.host;
    const me = host.localId;
    const ids: string[] = [];
    for (const s of host.sessions.values()) if (s.valid && s.announced) ids.push(s.id);
    const size = host.config.stateTransferChunkSize;
    for (let i = 0; i < ids.length; i += size) {
      if (host.stopped || !this.#inView(m.id)) return;
      host.flush();
      const chunk: string[] = [];
      const versions: number[] = [];
      const owners: string[] = [];
      for (const id of ids.slice(i, i + size)) {
        const s = host.sessions.get(id);
        if (!(s?.valid && s.announced)) continue;
        chunk.push(id);
        versions.push(s.version);
        owners.push(s.ownerId);
      }
      if (chunk.length === 0) continue;
      // Acknowledged once the member answered with its copies of these (merged here by then).
      await host.send(m, holdingMsg(host.contextName, Purpose.REJOIN, chunk, versions, owners));
      const p = host.placement();
      const k = host.k;
      const push = chunk.filter((id) => {
        const s = host.sessions.get(id);
        return s?.valid === true && (run.both.has(id) || p.isHolder(id, s.ownerId || me, k, m.id));
      });
      const records = recordsOf(host, push);
      if (records.length > 0) {
        await host.send(m, mergeCopiesMsg(host.contextName, records, []));
        host.counters.rejoinCopiesSent += records.length;
      }
      await nextTurn();
    }
    // Every session both hold was merged here (each chunk's answer came before its acknowledgement).
    host.merged(m);
    await this.#settle(m, run);
  }

  /** Sessions served here that `m` holds but placement does not give it: copies to their holders, then `m` releases its own. */
  async #settle(m: Member, run: Run): Promise<void> {
    const host = this.host;
    const me = host.localId;
    const p = host.placement();
    const sends = new Map<string, string[]>();
    const releases = new Map<string, string[]>();
    for (const id of run.both) {
      const s = host.sessions.get(id);
      if (!s?.valid || s.ownerId !== me) continue;
      const holders = p.holders(id, me, host.k);
      if (holders.includes(m.id)) continue;
      for (const h of holders) if (h !== me) add(sends, h, id);
      add(releases, m.id, id);
    }
    const size = host.config.stateTransferChunkSize;
    if (releases.size > 0) await host.restore(chunked(sends, size), chunked(releases, size));
  }

  /** HOLDING (rejoin) from `from`: its copies of the sessions held here too, and the ids ended here, before the acknowledgement. */
  async onHolding(h: HoldingMsg, from: Member): Promise<void> {
    const host = this.host;
    const ended: string[] = [];
    const held: string[] = [];
    for (const id of h[3]) {
      if (host.endedLately(id)) ended.push(id);
      else if (host.sessions.get(id)?.valid) held.push(id);
    }
    const records = recordsOf(host, held);
    if (records.length === 0 && ended.length === 0) return;
    try {
      await host.send(from, mergeCopiesMsg(host.contextName, records, ended));
      host.counters.rejoinCopiesSent += records.length;
    } catch {
      // Gone again: it will be back, and merge then.
    }
  }

  /** MERGE_COPIES: merge each copy by stamps (the owner at equal versions: resolveOwner), then end what the sender invalidated. */
  onMergeCopies(c: MergeCopiesMsg, from: Member): void {
    const host = this.host;
    const run = this.#runs.get(from.id);
    const now = Date.now();
    for (const raw of c[2]) {
      const r = readRecord(raw);
      if (r instanceof Refused) {
        host.applyRecord(raw, from, now); // refused there, counted
        continue;
      }
      const before = host.sessions.get(r[0]);
      // Not held here: taken only when placement gives it to this node. An answer to this node's
      // HOLDING for a copy released meanwhile (the owner settled) must not bring it back.
      if (before === undefined && !host.placement().isHolder(r[0], r[9] || from.id, host.k, host.localId)) continue;
      const version = before?.version ?? -1;
      const owner = before?.ownerId ?? '';
      host.applyRecord(raw, from, now);
      const s = host.sessions.get(r[0]);
      if (s === undefined) continue; // refused, or ended here (a tombstone)
      host.counters.rejoinCopiesMerged++;
      run?.both.add(r[0]);
      if (s === before) resolveOwner(s, version, owner, r, host.localId);
    }
    if (c[3].length > 0) host.applyTombstones(c[3]);
  }
}
