/**
 * The statistics a session manager reports (node.stats().sessions[], /_clowder/stats): one typed
 * shape, every counter of counters.ts beside the manager's state. A second manager (BackupManager)
 * extends it with its own fields.
 */
import { byName, type Counter } from './counters.js';
import type { SerializeStats } from './request-queue.js';
import type { StateTransferStats } from './state-receiver.js';

export interface ManagerStats extends Readonly<Record<Counter, number>>, Readonly<SerializeStats> {
  /** The context (application) name. */
  readonly context: string;
  /** Which manager serves it (sessions.manager). */
  readonly manager: 'delta' | 'backup';
  /** Sessions held on this node: its own and copies. */
  readonly activeSessions: number;
  /** Of those, copies made from what members sent (bounded by maxReplicaSessions). */
  readonly replicaSessions: number;
  /** Ids of sessions ended lately, kept so that a late message cannot revive them. */
  readonly tombstones: number;
  /** The node may serve (its state transfer ended). */
  readonly ready: boolean;
  readonly stateTransfer: StateTransferStats;
  /** Members found running after this node was ready, whose sessions it merged. */
  readonly lateMemberMerges: number;
  /** Milliseconds spent finding and sending changes at the end of requests. */
  readonly replicationTimeMs: number;
  /** Messages sent, by type name (types never sent left out). */
  readonly sent: Readonly<Record<string, number>>;
  /** Messages received, by type name ('unknown' for a type no node sends). */
  readonly received: Readonly<Record<string, number>>;
}

/** What {@link managerStats} reads. */
export interface StatsSource {
  readonly context: string;
  readonly manager: 'delta' | 'backup';
  readonly activeSessions: number;
  readonly replicaSessions: number;
  readonly tombstones: number;
  readonly ready: boolean;
  readonly stateTransfer: StateTransferStats;
  readonly lateMemberMerges: number;
  /** Milliseconds, unrounded. */
  readonly replicationTime: number;
  readonly counters: Readonly<Record<Counter, number>>;
  /** sessions.serialize (request-queue.ts). */
  readonly serialize: SerializeStats;
  readonly sentByType: number[];
  readonly receivedByType: number[];
}

/** A snapshot (copies, not views) of a manager's statistics. */
export function managerStats(s: StatsSource): ManagerStats {
  return {
    context: s.context,
    manager: s.manager,
    activeSessions: s.activeSessions,
    replicaSessions: s.replicaSessions,
    tombstones: s.tombstones,
    ready: s.ready,
    stateTransfer: { ...s.stateTransfer },
    lateMemberMerges: s.lateMemberMerges,
    replicationTimeMs: Math.round(s.replicationTime * 1000) / 1000,
    ...s.counters,
    ...s.serialize,
    sent: byName(s.sentByType),
    received: byName(s.receivedByType),
  };
}

/**
 * The BackupManager's counters for keeping copies in agreement outside membership changes
 * (backup-sync.ts): rejoin exchanges, the periodic repair, the graceful-stop hand-over.
 */
export interface BackupSyncCounters {
  /** Exchanges run with members back after a silence (a pause, a healed partition). */
  rejoinExchanges: number;
  /** Copies sent to such a member (sessions both held, or that placement gives it), merged there by stamps. */
  rejoinCopiesSent: number;
  /** Copies received from such a member and merged here by stamps. */
  rejoinCopiesMerged: number;
  /** Periodic repair passes (sessions.repairIntervalMs). */
  repairRuns: number;
  /** Copies the repair re-sent: a send had failed, or a backup lacked the session or held it older. */
  copiesRepaired: number;
  /** Copies handed over by a graceful stop to the members that hold the sessions once this node is gone. */
  stopHandOvers: number;
  /** Copies a graceful stop could not hand over (a send failed, or sessions.stopHandOverMs passed). */
  stopHandOverMissed: number;
}
