/**
 * A BackupManager node that stops gracefully hands its sessions over before it leaves
 * (sessions.stopHandOverMs). Without it the others restore the factor only once it is gone: a
 * window in which every session it held has one copy fewer (none, with backups 0).
 *
 * For each session held here it computes what the members will compute once this node is gone
 * (rebalance.ts): the node that will act for it (its primary if that stays, else its first
 * remaining backup, the custodian) and the holders the placement without this node gives it. Each
 * of those holders that does not hold it yet (not among its holders today, or known to lack it)
 * gets this node's copy now, in acknowledged chunks of stateTransferChunkSize, one per event-loop
 * turn, until the budget is spent. A session nobody else holds (backups 0) goes to the member
 * ranked first for it, which keeps it as its custodian. The rebalance that follows the leave then
 * finds every copy where it belongs (what it sends again merges by stamps).
 */
import { add, type BackupSyncHost, sendCopies } from './backup-sync-host.js';
import { Placement } from './placement.js';
import { actingPrimary } from './rebalance.js';
import { placementMemberOf } from './replication-hub.js';

/** Who lacks what: the copies to send before this node leaves, by member id. */
export function handOverPlan(
  host: Pick<BackupSyncHost, 'localId' | 'k' | 'sessions' | 'members' | 'placement'>,
  lacks: (id: string, member: string) => boolean,
): Map<string, string[]> {
  const me = host.localId;
  const k = host.k;
  const before = host.placement();
  const after = new Placement(host.members().map(placementMemberOf));
  const plan = new Map<string, string[]>();
  if (after.size === 0) return plan;
  for (const s of host.sessions.values()) {
    if (!s.valid || !s.announced) continue;
    const primary = s.ownerId === '' ? me : s.ownerId;
    const old = before.holders(s.id, primary, k);
    const acting = actingPrimary(s.id, primary, before, after, k);
    const next = acting === undefined ? after.backups(s.id, undefined, 1) : after.holders(s.id, acting, k);
    for (const to of next) if (to !== me && (!old.includes(to) || lacks(s.id, to))) add(plan, to, s.id);
  }
  return plan;
}

/** Sends the copies of {@link handOverPlan} within sessions.stopHandOverMs; counts what was and was not handed over. */
export async function handOver(
  host: BackupSyncHost,
  repair: { lacks(id: string, to: string): boolean },
): Promise<void> {
  const plan = handOverPlan(host, (id, to) => repair.lacks(id, to));
  if (plan.size === 0) return;
  const budget = host.config.stopHandOverMs;
  const deadline = Date.now() + budget;
  const c = host.counters;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), budget);
    timer.unref();
  });
  const started = Date.now();
  try {
    for (const [toId, ids] of plan) {
      const to = host.members().find((m) => m.id === toId);
      if (to === undefined || Date.now() >= deadline) {
        c.stopHandOverMissed += ids.length;
        continue;
      }
      const sent = sendCopies(host, to, ids);
      sent.catch(() => {}); // raced below
      try {
        const r = await Promise.race([sent, expired]);
        if (r === 'late') c.stopHandOverMissed += ids.length;
        else c.stopHandOvers += r;
      } catch (err) {
        c.stopHandOverMissed += ids.length;
        host.logger.warn({ to: to.name, err: (err as Error).message }, 'handing sessions over before stopping failed');
      }
    }
  } finally {
    clearTimeout(timer);
  }
  host.logger.info(
    { handedOver: c.stopHandOvers, missed: c.stopHandOverMissed, ms: Date.now() - started },
    'handed the sessions over before leaving',
  );
}
