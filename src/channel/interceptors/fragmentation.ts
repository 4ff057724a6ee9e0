/**
 * Fragmentation (Tomcat's FragmentationInterceptor): a message larger than fragmentBytes travels
 * as fragments, each a DATA frame with the FRAGMENT flag and a 12-byte header
 * (message number u32, index u32, count u32), and is reassembled before it goes up. Small
 * messages pass untouched. Reassembly is bounded: the announced size may not exceed
 * maxMessageBytes, at most 64 messages per sender are open at once, and incomplete ones expire.
 */
import type { FragmentationConfig } from '../../config/channel-config.js';
import { SendFlag } from '../../config/send-options.js';
import { FrameError } from '../../core/errors.js';
import { FrameFlag } from '../../wire/frame.js';
import type { IncomingMessage, Interceptor, InterceptorContext } from '../types.js';

const HEAD = 12;
const MAX_OPEN_PER_SENDER = 64;
const MIN_FRAGMENT = 1024;

interface Assembly {
  parts: (Buffer | undefined)[];
  received: number;
  bytes: number;
  last: number;
}

export function fragmentation(config: FragmentationConfig): Interceptor {
  let ctx: InterceptorContext;
  let maxMessage = 0;
  /** Effective fragment size: never more than fits in one frame (sequence + fragment header). */
  let size = config.fragmentBytes;
  let nextId = 0;
  const open = new Map<string, Map<number, Assembly>>();
  const c = { fragmentedSent: 0, fragmentsSent: 0, reassembled: 0, expired: 0, refused: 0 };

  return {
    name: 'fragmentation',
    start(x) {
      ctx = x;
      maxMessage = x.config.maxMessageBytes;
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
      const p = msg.payload;
      if (p.length < HEAD) throw new FrameError('fragment without header');
      const id = p.readUInt32BE(0);
      const index = p.readUInt32BE(4);
      const count = p.readUInt32BE(8);
      // Fragments are at least MIN_FRAGMENT bytes (config minimum), which bounds the count.
      if (count < 2 || index >= count || count > Math.ceil(maxMessage / MIN_FRAGMENT) + 1) {
        c.refused++;
        throw new FrameError(`bad fragment ${index}/${count} from ${msg.from.name}`);
      }
      let mine = open.get(msg.from.id);
      if (mine === undefined) open.set(msg.from.id, (mine = new Map()));
      let a = mine.get(id);
      if (a === undefined) {
        if (mine.size >= MAX_OPEN_PER_SENDER) {
          c.refused++;
          throw new FrameError(`too many incomplete fragmented messages from ${msg.from.name}`);
        }
        a = { parts: new Array(count), received: 0, bytes: 0, last: Date.now() };
        mine.set(id, a);
      }
      if (a.parts.length !== count || a.parts[index] !== undefined) {
        c.refused++;
        throw new FrameError(`inconsistent fragment ${index}/${count} from ${msg.from.name}`);
      }
      const chunk = Buffer.from(p.subarray(HEAD));
      a.bytes += chunk.length;
      if (a.bytes > maxMessage) {
        mine.delete(id);
        c.refused++;
        throw new FrameError(`fragmented message from ${msg.from.name} exceeds maxMessageBytes ${maxMessage}`);
      }
      a.parts[index] = chunk;
      a.received++;
      a.last = Date.now();
      if (a.received < count) return;
      mine.delete(id);
      c.reassembled++;
      const whole: IncomingMessage = {
        from: msg.from,
        flags: msg.flags & ~FrameFlag.FRAGMENT,
        payload: Buffer.concat(a.parts as Buffer[], a.bytes),
      };
      return next(whole);
    },
    memberRemoved(member, reason, next) {
      open.delete(member.id);
      next(member, reason);
    },
    tick(now) {
      for (const [sender, mine] of open) {
        for (const [id, a] of mine) {
          if (now - a.last > config.expireMs) {
            mine.delete(id);
            c.expired++;
            ctx.logger.warn(
              { sender, received: a.received, of: a.parts.length },
              'incomplete fragmented message expired',
            );
          }
        }
        if (mine.size === 0) open.delete(sender);
      }
    },
    stats: () => ({ ...c, open: Array.from(open.values()).reduce((n, m) => n + m.size, 0) }),
  };
}
