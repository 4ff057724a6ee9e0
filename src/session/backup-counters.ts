/** The BackupManager's counters and the stats it adds to the DeltaManager's (stats(), /_clowder/stats). */
import { type FetchCounters, newFetchCounters } from './fetches.js';
import type { BackupSyncCounters } from './manager-stats.js';

/** The BackupManager's own counters (stats). */
export interface BackupCounters extends FetchCounters {
  /** Copies sent to new holders by rebalances and take-overs. */
  sessionsMoved: number;
  /** Rebalances run (membership changes of the context). */
  rebalances: number;
  /** FETCH answers, COPIES, RELEASE or SHARE_SENT refused (malformed, unasked, not from the owner). */
  refusedBackupMessages: number;
  /** Copies dropped on a RELEASE. */
  copiesReleased: number;
  /** Copies sent whose acknowledgement failed (sent again by the periodic repair, or at the next membership change). */
  copyErrors: number;
}

/** Every counter at 0. */
export function newBackupCounters(): BackupCounters {
  return {
    sessionsMoved: 0,
    rebalances: 0,
    ...newFetchCounters(),
    refusedBackupMessages: 0,
    copiesReleased: 0,
    copyErrors: 0,
  };
}

export interface BackupStats extends BackupCounters, BackupSyncCounters {
  readonly manager: 'backup';
  readonly backups: number;
  /** Backups each session gets now: min(backups, members serving the context − 1). */
  readonly effectiveBackups: number;
  /** Fewer members than backups + 1: each session has fewer copies than configured. */
  readonly degraded: boolean;
  readonly primarySessions: number;
  readonly backupSessions: number;
  /** Sessions this node serves with fewer than 1 + backups live copies (degraded, or copies not yet acknowledged). */
  readonly underReplicated: number;
  /** When copies last finished moving after a change (ISO time), or null. */
  readonly lastRestoredAt: string | null;
}
