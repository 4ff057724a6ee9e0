/** Throughput statistics (Tomcat's ThroughputInterceptor): messages and bytes in and out, errors. */
import type { ThroughputConfig } from '../../config/channel-config.js';
import type { Interceptor, InterceptorContext } from '../types.js';

export function throughput(config: ThroughputConfig): Interceptor {
  let ctx: InterceptorContext;
  const c = { msgTx: 0, bytesTx: 0, msgRx: 0, bytesRx: 0, startedAt: 0 };
  function maybeLog(): void {
    if (config.logEvery > 0 && (c.msgTx + c.msgRx) % config.logEvery === 0) {
      const secs = (Date.now() - c.startedAt) / 1000;
      ctx.logger.info(
        { ...c, mbTxPerSec: c.bytesTx / 1e6 / secs, mbRxPerSec: c.bytesRx / 1e6 / secs },
        'throughput report',
      );
    }
  }
  return {
    name: 'throughput',
    start(x) {
      ctx = x;
      c.startedAt = Date.now();
    },
    send(msg, next) {
      c.msgTx++;
      c.bytesTx += msg.payload.length * msg.destinations.length;
      if (config.logEvery > 0) maybeLog();
      return next(msg);
    },
    receive(msg, next) {
      c.msgRx++;
      c.bytesRx += msg.payload.length;
      if (config.logEvery > 0) maybeLog();
      return next(msg);
    },
    stats: () => ({
      msgTx: c.msgTx,
      bytesTx: c.bytesTx,
      msgRx: c.msgRx,
      bytesRx: c.bytesRx,
    }),
  };
}
