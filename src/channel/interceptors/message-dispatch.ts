/**
 * Asynchronous dispatch (Tomcat's MessageDispatchInterceptor): a send with the ASYNCHRONOUS
 * option resolves as soon as it is queued; a later delivery failure goes to the channel's
 * `sendError` event. When a destination's queue is full, the send either waits like a
 * synchronous one (alwaysSend, the default: backpressure instead of loss) or fails at once.
 */
import type { MessageDispatchConfig } from '../../config/channel-config.js';
import { SendFlag } from '../../config/send-options.js';
import { ClusterError, ErrorCode } from '../../core/errors.js';
import { RESOLVED } from '../pipeline.js';
import type { Interceptor, InterceptorContext, OutgoingMessage } from '../types.js';

export function messageDispatch(config: MessageDispatchConfig): Interceptor {
  let ctx: InterceptorContext;
  /** The dispatch limit never exceeds the connection's own (sender.maxQueueBytes). */
  let limit = config.maxQueueBytes;
  const counters = { dispatched: 0, failed: 0, fellBackToSync: 0, refusedQueueFull: 0 };

  function watch(p: Promise<void>, msg: OutgoingMessage): void {
    // The bottom returns the shared RESOLVED promise when it queued everything: nothing to watch.
    if (p === RESOLVED) return;
    p.catch((err: Error) => {
      counters.failed++;
      ctx.reportSendError(err, msg);
    });
  }

  /** Waits until every destination has room (backpressure), then sends and waits like a synchronous send. */
  async function sendWhenRoom(msg: OutgoingMessage, next: (m: OutgoingMessage) => Promise<void>): Promise<void> {
    for (const m of msg.destinations) {
      while (ctx.pendingBytes(m) + msg.payload.length > limit && ctx.members().some((x) => x.id === m.id)) {
        await ctx.drained(m);
      }
    }
    return next(msg);
  }

  return {
    name: 'messageDispatch',
    start(c) {
      ctx = c;
      limit = Math.min(config.maxQueueBytes, c.config.sender.maxQueueBytes);
    },
    send(msg, next) {
      if ((msg.flags & SendFlag.ASYNCHRONOUS) === 0) return next(msg);
      for (const m of msg.destinations) {
        if (ctx.pendingBytes(m) + msg.payload.length > limit) {
          if (config.alwaysSend) {
            counters.fellBackToSync++;
            return sendWhenRoom(msg, next);
          }
          counters.refusedQueueFull++;
          return Promise.reject(
            new ClusterError(
              ErrorCode.QUEUE_FULL,
              `dispatch queue to ${m.name} is full (${limit} bytes): the member is slow or unreachable`,
            ),
          );
        }
      }
      counters.dispatched++;
      msg.wait = false;
      watch(next(msg), msg);
      return RESOLVED;
    },
    stats: () => ({ ...counters }),
  };
}
