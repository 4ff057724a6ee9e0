/**
 * Asynchronous dispatch (Tomcat's MessageDispatchInterceptor): a send with the ASYNCHRONOUS
 * option resolves as soon as it is queued; a later delivery failure goes to the channel's
 * `sendError` event. When a destination's queue is full, the send either waits like a
 * synchronous one (alwaysSend, the default: backpressure instead of loss) or fails at once.
 */
import type { MessageDispatchConfig } from '../../config/channel-config.js';
import { SendFlag } from '../../config/send-options.js';
import { ClusterError, ErrorCode } from '../../core/errors.js';
import type { Interceptor, InterceptorContext, OutgoingMessage } from '../types.js';

const RESOLVED = Promise.resolve();

export function messageDispatch(config: MessageDispatchConfig): Interceptor {
  let ctx: InterceptorContext;
  const counters = { dispatched: 0, failed: 0, fellBackToSync: 0, refusedQueueFull: 0 };

  function onFailure(this: OutgoingMessage, err: Error): void {
    counters.failed++;
    ctx.reportSendError(err, this);
  }

  return {
    name: 'messageDispatch',
    start(c) {
      ctx = c;
    },
    send(msg, next) {
      if ((msg.flags & SendFlag.ASYNCHRONOUS) === 0) return next(msg);
      for (const m of msg.destinations) {
        if (ctx.pendingBytes(m) + msg.payload.length > config.maxQueueBytes) {
          if (config.alwaysSend) {
            counters.fellBackToSync++;
            return next(msg);
          }
          counters.refusedQueueFull++;
          return Promise.reject(
            new ClusterError(
              ErrorCode.QUEUE_FULL,
              `dispatch queue to ${m.name} is full (${config.maxQueueBytes} bytes): the member is slow or unreachable`,
            ),
          );
        }
      }
      counters.dispatched++;
      msg.wait = false;
      next(msg).catch(onFailure.bind(msg));
      return RESOLVED;
    },
    stats: () => ({ ...counters }),
  };
}
