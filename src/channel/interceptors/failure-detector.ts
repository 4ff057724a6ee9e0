/**
 * Failure detector (Tomcat's TcpFailureDetector). A member reported gone for missed heartbeats,
 * or suspected because its connection reset or a send to it failed, is verified with a fresh TCP
 * connection, hello and PING before the application hears of it:
 * - no answer (refused, reset, timeout) or another process at its address → removed at once;
 * - it answers → a false alarm (a lost datagram): it stays, and is re-verified every tick until
 *   removeSuspectsTimeoutMs.
 * A SIGKILLed node's connections reset, so it is gone in milliseconds, well under dropTime.
 * A leave or restart passes straight through: the membership service has verified it the same
 * way already (a LEAVE frame, a LEAVING heartbeat or a new id at a member's address proves nothing
 * on its own without a key).
 *
 * A verdict "dead" waits while the member's own connection to us is still open, until that
 * connection closes or verifyTimeoutMs passes: a killed process's connections all reset together,
 * so this costs a crash nothing, but a member stopping gracefully refuses new connections before
 * its LEAVE (sent on that connection) arrives, and a connection of ours caught in its listen backlog
 * resets then: without the wait that leave was reported as `unreachable`.
 */
import type { FailureDetectorConfig } from '../../config/channel-config.js';
import type { Interceptor, InterceptorContext, Member, RemoveReason } from '../types.js';

/** How long after its LEAVE a member found dead counts as having left. */
const LEAVING_MS = 10_000;

export function failureDetector(config: FailureDetectorConfig): Interceptor {
  let ctx: InterceptorContext;
  const verifying = new Set<string>();
  /** Members that missed heartbeats but answered TCP (Tomcat's removeSuspects). */
  const watched = new Map<string, { member: Member; since: number }>();
  const counters = { verifications: 0, falseAlarms: 0, confirmedDead: 0, heldVerdicts: 0 };
  /**
   * Members that sent a LEAVE, with when: one confirmed dead soon after left (its connections
   * closing may be noticed before the membership service's check of the LEAVE completes).
   */
  const leaving = new Map<string, number>();
  /** Dead verdicts waiting for the member's connection to us to close (see above). */
  const held = new Map<string, { member: Member; reason: RemoveReason; timer: NodeJS.Timeout }>();

  function check(member: Member, reason: RemoveReason): void {
    if (verifying.has(member.id) || held.has(member.id)) return;
    verifying.add(member.id);
    counters.verifications++;
    ctx.verify(member, config.verifyTimeoutMs).then((alive) => {
      verifying.delete(member.id);
      if (alive) {
        counters.falseAlarms++;
        if (reason === 'timeout' && !watched.has(member.id)) {
          watched.set(member.id, { member, since: Date.now() });
          ctx.logger.warn({ member: member.name }, 'member missed heartbeats but answers over TCP: kept, and watched');
        }
        return;
      }
      if (ctx.connectedFrom(member)) hold(member, reason);
      else dead(member, reason);
    });
  }

  function hold(member: Member, reason: RemoveReason): void {
    const timer = setTimeout(() => release(member.id), config.verifyTimeoutMs);
    timer.unref();
    held.set(member.id, { member, reason, timer });
    counters.heldVerdicts++;
  }

  /** Ends the held verdict on `id`, if any (without acting on it). */
  function drop(id: string): { member: Member; reason: RemoveReason } | undefined {
    const h = held.get(id);
    if (h === undefined) return undefined;
    held.delete(id);
    clearTimeout(h.timer);
    return h;
  }

  /** Acts on the held verdict on `id` now: its connection closed, or the bound passed. */
  function release(id: string): void {
    const h = drop(id);
    if (h !== undefined) dead(h.member, h.reason);
  }

  function dead(member: Member, reason: RemoveReason): void {
    counters.confirmedDead++;
    watched.delete(member.id);
    ctx.forget(member);
    ctx.up.memberRemoved(member, leftRecently(member.id) ? 'leave' : reason === 'timeout' ? 'timeout' : 'unreachable');
    leaving.delete(member.id);
  }

  function leftRecently(id: string): boolean {
    const left = leaving.get(id);
    return left !== undefined && Date.now() - left < LEAVING_MS;
  }

  return {
    name: 'failureDetector',
    start(c) {
      ctx = c;
    },
    memberAdded(member, next) {
      watched.delete(member.id);
      drop(member.id);
      next(member);
    },
    memberRemoved(member, reason, next) {
      if (reason === 'leave' || reason === 'restart' || reason === 'unreachable') {
        // The detector's own removal of a member that sent its LEAVE meanwhile is a leave too.
        const why = reason === 'unreachable' && leftRecently(member.id) ? 'leave' : reason;
        watched.delete(member.id);
        leaving.delete(member.id);
        drop(member.id);
        next(member, why);
        return;
      }
      check(member, reason);
    },
    memberSuspected(member) {
      check(member, 'unreachable');
    },
    memberLeft(id) {
      watched.delete(id);
      if (leaving.size < 10_000) leaving.set(id, Date.now());
    },
    connectionClosed(id) {
      release(id);
    },
    stop() {
      for (const h of held.values()) clearTimeout(h.timer);
      held.clear();
    },
    tick(now) {
      for (const [id, t] of leaving) if (now - t >= LEAVING_MS) leaving.delete(id);
      for (const [id, w] of watched) {
        if (now - w.since > config.removeSuspectsTimeoutMs) watched.delete(id);
        else check(w.member, 'timeout');
      }
    },
    stats: () => ({ ...counters, watched: watched.size, held: held.size }),
  };
}
