/**
 * What keeps a BackupManager's copies at 1 + k outside the membership changes rebalance.ts
 * handles: the exchange with a member back after a silence (backup-rejoin.ts), the periodic
 * repair (backup-repair.ts) and the hand-over of a graceful stop (backup-handover.ts), and the
 * dispatch of their messages (HOLDING, MERGE_COPIES, WANTED). The manager calls it from its hooks.
 */
import type { Member } from '../channel/types.js';
import { handOver } from './backup-handover.js';
import { BackupRejoin } from './backup-rejoin.js';
import { BackupRepair } from './backup-repair.js';
import type { BackupSyncHost } from './backup-sync-host.js';
import { Purpose, readHolding, readMergeCopies, readWanted } from './backup-sync-messages.js';
import { Refused } from './message-readers.js';
import { Msg } from './messages.js';

export { type BackupSyncHost, newSyncCounters } from './backup-sync-host.js';

/** The rejoin exchange, the periodic repair and the graceful-stop hand-over of one BackupManager. */
export class BackupSync {
  readonly rejoin: BackupRejoin;
  readonly repair: BackupRepair;

  constructor(private readonly host: BackupSyncHost) {
    this.rejoin = new BackupRejoin(host);
    this.repair = new BackupRepair(host);
  }

  /** The manager is ready: the periodic repair starts. */
  start(): void {
    this.repair.start();
  }

  /** Before the manager stops: hands its sessions over to the members that will hold them (within stopHandOverMs). */
  async stopping(): Promise<void> {
    this.repair.stop();
    if (this.host.config.stopHandOverMs > 0) await handOver(this.host, this.repair);
  }

  stop(): void {
    this.repair.stop();
  }

  memberRemoved(id: string): void {
    this.repair.memberRemoved(id);
  }

  /** HOLDING, MERGE_COPIES or WANTED (false: another type); a promise holds the acknowledgement. */
  receive(m: unknown[], from: Member): boolean | Promise<void> {
    switch (m[0]) {
      case Msg.HOLDING: {
        const h = readHolding(m);
        if (h instanceof Refused) return this.#refused(h, from);
        if (h[2] === Purpose.REJOIN) return this.rejoin.onHolding(h, from);
        this.repair.onHolding(h, from);
        return true;
      }
      case Msg.MERGE_COPIES: {
        const c = readMergeCopies(m);
        if (c instanceof Refused) return this.#refused(c, from);
        this.rejoin.onMergeCopies(c, from);
        return true;
      }
      case Msg.WANTED: {
        const w = readWanted(m);
        if (w instanceof Refused) return this.#refused(w, from);
        this.repair.onWanted(w, from);
        return true;
      }
      default:
        return false;
    }
  }

  #refused(r: Refused, from: Member): true {
    this.host.refuse(from, r.why);
    return true;
  }
}
