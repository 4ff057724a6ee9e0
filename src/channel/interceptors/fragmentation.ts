/**
 * Fragmentation (Tomcat's FragmentationInterceptor): a message larger than fragmentBytes travels
 * as fragments, each a DATA frame with the FRAGMENT flag and a 12-byte header
 * (message number u32, index u32, count u32), and is reassembled before it goes up. Small
 * messages pass untouched. Reassembly (reassembly.ts) accepts fragments only from members that
 * joined, holds only what arrived, bounds open messages and bytes per member and in total, frees
 * a member's incomplete messages when its connection closes, and expires stale ones.
 */
import type { FragmentationConfig } from '../../config/channel-config.js';
import { SendFlag } from '../../config/send-options.js';
import { FrameError } from '../../core/errors.js';
import { FrameFlag } from '../../wire/frame.js';
import type { IncomingMessage, Interceptor, InterceptorContext } from '../types.js';
import { FRAGMENT_HEAD as HEAD, Reassembler } from './reassembly.js';

export function fragmentation(config: FragmentationConfig): Interceptor {
  let ctx: InterceptorContext;
  let maxMessage = 0;
  /** Effective fragment size: never more than fits in one frame (sequence + fragment header). */
  let size = config.fragmentBytes;
  let nextId = 0;
  let assembler: Reassembler;
  /** Members that joined (passed this interceptor upwards): the only senders whose fragments are kept. */
  const joined = new Set<string>();
  const c = { fragmentedSent: 0, fragmentsSent: 0 };

  return {
    name: 'fragmentation',
    start(x) {
      ctx = x;
      maxMessage = x.config.maxMessageBytes;
      assembler = new Reassembler({
        maxMessageBytes: maxMessage,
        maxOpenPerMember: config.maxOpenPerMember,
        maxOpenMessages: config.maxOpenMessages,
        maxOpenBytes: config.maxOpenBytes,
      });
      size = Math.min(config.fragmentBytes, x.config.maxFrameBytes - 4 - HEAD);
    },
    send(msg, next) {
      const payload = msg.payload;
      if (payload.length <= size) return next(msg);
      if (payload.length > maxMessage) {
        return Promise.reject(
          new FrameError(`message of ${payload.length} bytes exceeds maxMessageBytes ${maxMessage}`),
        );
      }
      const count = Math.ceil(payload.length / size);
      const id = (nextId = (nextId + 1) >>> 0);
      c.fragmentedSent++;
      const sends: Promise<void>[] = [];
      for (let i = 0; i < count; i++) {
        const chunk = payload.subarray(i * size, (i + 1) * size);
        const part = Buffer.allocUnsafe(HEAD + chunk.length);
        part.writeUInt32BE(id, 0);
        part.writeUInt32BE(i, 4);
        part.writeUInt32BE(count, 8);
        part.set(chunk, HEAD);
        // Only the last fragment waits for processing: the others are acknowledged on receipt.
        const last = i === count - 1;
        const flags = (last ? msg.flags : msg.flags & ~SendFlag.SYNC_ACK) | FrameFlag.FRAGMENT;
        c.fragmentsSent++;
        sends.push(
          next({ destinations: msg.destinations, flags, payload: part, timeoutMs: msg.timeoutMs, wait: msg.wait }),
        );
      }
      return Promise.all(sends).then(() => {});
    },
    receive(msg, next) {
      if ((msg.flags & FrameFlag.FRAGMENT) === 0) return next(msg);
      // A member announced by an interceptor above this one never passed here: ask the channel's view.
      if (!joined.has(msg.from.id) && !ctx.members().some((m) => m.id === msg.from.id)) assembler.refuseStranger();
      const whole = assembler.add(msg.from.id, msg.payload, Date.now(), (msg.flags & SendFlag.SYNC_ACK) !== 0);
      if (whole === undefined) return;
      const up: IncomingMessage = { from: msg.from, flags: msg.flags & ~FrameFlag.FRAGMENT, payload: whole };
      return next(up);
    },
    memberAdded(member, next) {
      joined.add(member.id);
      next(member);
    },
    memberRemoved(member, reason, next) {
      joined.delete(member.id);
      assembler.forget(member.id);
      next(member, reason);
    },
    connectionClosed(id) {
      assembler.forget(id);
    },
    tick(now) {
      assembler.expire(now, config.expireMs, (sender, received, of) =>
        ctx.logger.warn({ sender, received, of }, 'incomplete fragmented message expired'),
      );
    },
    stats: () => ({
      ...c,
      ...assembler.counters,
      open: assembler.openMessages,
      openBytes: assembler.openBytes,
    }),
  };
}
