/**
 * A member back after a silence (a pause, a healed partition: the channel's `memberRejoined`)
 * may have missed this node's changes, and this node its: sessions created, written or
 * invalidated while they could not reach each other. Whichever side noticed merges both ways:
 * it pulls the member's sessions (a background state transfer, StateReceiver.merge) and sends it
 * a MERGE_REQUEST, on which the member pulls this node's. The side that kept its view (it was
 * paused, so it never saw the others go) learns it that way: it cannot tell from its own
 * observations. See docs/architecture.md, "Partitions and merges".
 */
import type { Member } from '../channel/types.js';
import type { Logger } from '../core/logger.js';
import { Msg } from './messages.js';
import { type HubManager, type ReplicationHub, servesContext } from './replication-hub.js';

/** Rejoin merges as the hub counts them (stats: `rejoins` of every manager). */
export interface RejoinCounters {
  /** Members this node found back after a silence (each starts a merge per shared context). */
  noticed: number;
  /** MERGE_REQUESTs received: a member found this node back and asked it to merge its sessions. */
  asked: number;
  /** MERGE_REQUESTs refused: from a member not in view, or for a context this node does not serve. */
  refused: number;
  /** MERGE_REQUESTs that could not be delivered (the member is gone again: it will rejoin again). */
  sendFailures: number;
}

const USE_ACK = { options: 'use_ack' } as const;

export class RejoinMerges {
  readonly counters: RejoinCounters = { noticed: 0, asked: 0, refused: 0, sendFailures: 0 };

  constructor(
    private readonly hub: ReplicationHub,
    private readonly managers: ReadonlyMap<string, HubManager>,
    private readonly logger: Logger,
  ) {}

  /** The channel found `m` back: merge its sessions here, and ask it to merge ours. */
  noticed(m: Member): void {
    this.counters.noticed++;
    for (const [context, manager] of this.managers) {
      if (!servesContext(m, context)) continue;
      manager.mergeWith?.(m, 'rejoined');
      this.hub.channel.send(m, [Msg.MERGE_REQUEST, context], USE_ACK).catch((err: Error) => {
        this.counters.sendFailures++;
        this.logger.warn(
          { context, member: m.name, err: err.message },
          'could not ask a member back after a silence to merge',
        );
      });
    }
  }

  /** MERGE_REQUEST from `from`: it found this node back; merge its sessions of `context`. */
  asked(context: unknown, from: Member): void {
    const manager = typeof context === 'string' ? this.managers.get(context) : undefined;
    if (manager === undefined || !this.hub.channel.members().some((x) => x.id === from.id)) {
      if (this.counters.refused++ % 100 === 0)
        this.logger.warn(
          { from: from.name, refused: this.counters.refused },
          'refused a merge request: not a member in view, or a context this node does not serve',
        );
      return;
    }
    this.counters.asked++;
    manager.mergeWith?.(from, 'rejoined');
  }
}
