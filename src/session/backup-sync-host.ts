/**
 * What backup-rejoin.ts, backup-repair.ts and backup-handover.ts share: the BackupManager they
 * work for ({@link BackupSyncHost}), their counters, and acknowledged chunked sends of copies.
 */
import type { Member } from '../channel/types.js';
import type { SessionConfig } from '../config/session-config.js';
import type { Logger } from '../core/logger.js';
import { copiesMsg } from './backup-messages.js';
import type { BackupSyncCounters } from './manager-stats.js';
import type { SessionRecord } from './messages.js';
import type { Placement } from './placement.js';
import type { Chunk } from './rebalance.js';
import type { Session } from './session.js';
import { toRecord } from './state-donor.js';

/** What the BackupManager gives the modules that keep its copies in agreement. */
export interface BackupSyncHost {
  readonly contextName: string;
  readonly localId: string;
  readonly config: SessionConfig;
  /** Backups wanted per session (sessions.backups). */
  readonly k: number;
  readonly sessions: ReadonlyMap<string, Session>;
  readonly logger: Logger;
  readonly counters: BackupSyncCounters;
  /** The manager is stopping or stopped: nothing more is sent. */
  readonly stopped: boolean;
  /** The members serving the context (this node excluded). */
  members(): readonly Member[];
  /** The placement over this node and those members. */
  placement(): Placement;
  /** Sends what requests changed and is queued for the turn's end (a record's stamps must cover its values). */
  flush(): void;
  /** Sends and resolves once `to` applied it (use_ack, sync). */
  send(to: Member, message: readonly unknown[]): Promise<void>;
  /** Sends after what is queued, not awaited (a failure is counted by the outbound path). */
  post(to: readonly Member[], message: readonly unknown[]): void;
  /** Checks and merges one record by stamps (refusals counted); its value bytes. */
  applyRecord(raw: unknown, from: Member, now: number): number;
  /** Ids invalidated on a member: they end here too, and leave a tombstone. */
  applyTombstones(ids: readonly string[]): void;
  /** Whether `id` ended lately here (its tombstone). */
  endedLately(id: string): boolean;
  /** Counts a refused message (refusedBackupMessages). */
  refuse(from: Member, why: string): void;
  /** The rejoin exchange with `m` merged what both hold: its records are judged as usual again (forks.ts). */
  merged(m: Member): void;
  /** Copies to new holders (acknowledged chunks), then releases of the holders they replace (rebalance's path). */
  restore(sends: readonly Chunk[], releases: readonly Chunk[]): Promise<void>;
}

/** The counters of this module's parts, every one 0. */
export function newSyncCounters(): BackupSyncCounters {
  return {
    rejoinExchanges: 0,
    rejoinCopiesSent: 0,
    rejoinCopiesMerged: 0,
    repairRuns: 0,
    copiesRepaired: 0,
    stopHandOvers: 0,
    stopHandOverMissed: 0,
  };
}

/** The records of the sessions among `ids` still held here (valid and announced), after the queued changes went out. */
export function recordsOf(host: BackupSyncHost, ids: Iterable<string>): SessionRecord[] {
  host.flush();
  const records: SessionRecord[] = [];
  for (const id of ids) {
    const s = host.sessions.get(id);
    if (s?.valid && s.announced) records.push(toRecord(s));
  }
  return records;
}

/** One event-loop turn: requests run between two chunks. */
export const nextTurn = (): Promise<void> => new Promise<void>((r) => setImmediate(r));

/** Appends `id` to the list of `key`. */
export function add(map: Map<string, string[]>, key: string, id: string): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [id]);
  else list.push(id);
}

/** Lists by member as chunks of at most `size` ids. */
export function chunked(map: ReadonlyMap<string, readonly string[]>, size: number): Chunk[] {
  const out: Chunk[] = [];
  for (const [to, ids] of map) for (let i = 0; i < ids.length; i += size) out.push({ to, ids: ids.slice(i, i + size) });
  return out;
}

/**
 * Sends `ids`' copies (COPIES) to `to` in acknowledged chunks of stateTransferChunkSize, one per
 * event-loop turn; resolves with how many were applied there. Rejects on the first failure.
 */
export async function sendCopies(host: BackupSyncHost, to: Member, ids: readonly string[]): Promise<number> {
  const size = host.config.stateTransferChunkSize;
  let sent = 0;
  for (let i = 0; i < ids.length; i += size) {
    const records = recordsOf(host, ids.slice(i, i + size));
    if (records.length === 0) continue;
    await host.send(to, copiesMsg(host.contextName, records));
    sent += records.length;
    if (i + size < ids.length) await nextTurn();
  }
  return sent;
}
