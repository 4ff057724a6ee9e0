/**
 * Builds the interceptor stack once, at start: one plain function per hook and position, so a
 * message costs one call per interceptor that has the hook and nothing else (no per-message
 * closures, no walking of interceptors that do not care).
 */
import type { RemoveReason } from '../membership/membership.js';
import type { IncomingMessage, Interceptor, Member, OutgoingMessage, Upstream } from './types.js';

type SendFn = (msg: OutgoingMessage) => Promise<void>;

/** The one resolved promise the hot path returns, so an asynchronous send allocates none. */
export const RESOLVED: Promise<void> = Promise.resolve();

export interface Pipeline {
  /** Entry at the top for sends. */
  send: SendFn;
  /** Entry at the bottom for upward events. */
  up: Upstream;
  /** Entry points from below interceptor i (for events an interceptor injects). */
  upFrom(i: number): Upstream;
  /** Send entry point below interceptor i. */
  sendFrom(i: number): SendFn;
}

export function buildPipeline(interceptors: readonly Interceptor[], bottom: SendFn, top: Upstream): Pipeline {
  const n = interceptors.length;
  // sends[i] = entry into interceptor i (sends[n] = bottom).
  const sends: SendFn[] = new Array(n + 1);
  sends[n] = bottom;
  for (let i = n - 1; i >= 0; i--) {
    const ic = interceptors[i]!;
    const next = sends[i + 1]!;
    sends[i] = ic.send ? (msg) => ic.send!(msg, next) : next;
  }
  // ups[i] = entry into interceptor i-1 from below, i.e. the upstream seen by interceptor i (ups[0] = top).
  const ups: Upstream[] = new Array(n + 1);
  ups[0] = top;
  for (let i = 1; i <= n; i++) {
    const ic = interceptors[i - 1]!;
    const above = ups[i - 1]!;
    const receive = ic.receive ? (m: IncomingMessage) => ic.receive!(m, above.receive) : above.receive;
    const added = ic.memberAdded ? (m: Member) => ic.memberAdded!(m, above.memberAdded) : above.memberAdded;
    const removed = ic.memberRemoved
      ? (m: Member, r: RemoveReason) => ic.memberRemoved!(m, r, above.memberRemoved)
      : above.memberRemoved;
    const suspected = ic.memberSuspected
      ? (m: Member, e: Error) => ic.memberSuspected!(m, e, above.memberSuspected)
      : above.memberSuspected;
    ups[i] = { receive, memberAdded: added, memberRemoved: removed, memberSuspected: suspected };
  }
  return {
    send: sends[0]!,
    up: ups[n]!,
    upFrom: (i) => ups[i]!,
    sendFrom: (i) => sends[i + 1]!,
  };
}
