/**
 * The donor side of a state transfer: every session of a context, streamed to a starting member
 * in acknowledged chunks (the next chunk is built only once the last one was applied), yielding
 * to the event loop between chunks, then the donor's tombstones.
 */
import type { Member } from '../channel/types.js';
import type { Nested } from '../codec/value-codec.js';
import type { Logger } from '../core/logger.js';
import { type StateNoneMsg, stateChunkMsg, stateCompleteMsg, stateNoneMsg } from './message-builders.js';
import type { SessionRecord } from './messages.js';
import { attributeWire, type Session, wireSize } from './session.js';
import type { SessionChannel } from './session-channel.js';

/** Values per state-transfer chunk, at most (one chunk is one acknowledged message; also ≤ maxMessageBytes / 2). */
const CHUNK_BYTES = 4 * 1024 * 1024;

export interface DonorContext {
  readonly channel: SessionChannel;
  readonly context: string;
  readonly sessions: ReadonlyMap<string, Session>;
  readonly tombstones: ReadonlyMap<string, number>;
  readonly chunkSize: number;
  readonly logger: Logger;
  /** Called before each chunk is taken: the manager sends changes it holds back for the turn's end. */
  readonly beforeChunk?: () => void;
}

/** A whole session as it travels in a state transfer or a repair. */
export function toRecord(s: Session): SessionRecord {
  const names: string[] = [];
  const values: (Buffer | Nested | null)[] = [];
  const stampV: number[] = [];
  const stampW: string[] = [];
  const bases: number[] = [];
  // forEach, not for-of with destructuring: no entry array and no iterator per attribute.
  s.attributes.forEach((a, name) => {
    if (a.w === '') return; // written here and not replicated yet: it travels as a delta
    names.push(name);
    values.push(a.removed ? null : attributeWire(a));
    stampV.push(a.v);
    stampW.push(a.w);
    bases.push(Math.min(a.b, a.v));
  });
  return [
    s.id,
    s.creationTime,
    s.lastAccessedTime,
    s.maxInactiveInterval,
    s.version,
    names,
    values,
    stampV,
    stampW,
    s.ownerId,
    bases,
  ];
}

/**
 * Chunks on their way at once: the donor builds the next chunk while the receiver applies the
 * previous one (one at a time left both sides idle half the time), and memory stays bounded.
 */
const WINDOW = 2;
const SYNC_ACK = { options: 'use_ack,sync' } as const;

/**
 * Streams the sessions that exist now to `to`. A chunk ends at `chunkSize` sessions or
 * CHUNK_BYTES of values, whichever comes first, so neither side holds much more than a chunk,
 * however large sessions are. Failures are logged (the starting member asks another one).
 */
export async function streamSessions(ctx: DonorContext, to: Member, requestId: unknown): Promise<void> {
  const { channel, context, sessions, logger } = ctx;
  const ids = Array.from(sessions.keys());
  const chunkBytes = Math.min(CHUNK_BYTES, Math.floor(channel.config.maxMessageBytes / 2));
  const started = Date.now();
  let seq = 0;
  let sent = 0;
  /** Chunks sent and not yet applied by the receiver, oldest first. */
  const inFlight: Promise<void>[] = [];
  try {
    let j = 0;
    while (j < ids.length) {
      ctx.beforeChunk?.();
      const records: SessionRecord[] = [];
      let bytes = 0;
      for (; j < ids.length && records.length < ctx.chunkSize && bytes < chunkBytes; j++) {
        const s = sessions.get(ids[j]!);
        if (!(s?.valid && s.announced)) continue;
        const r = toRecord(s);
        for (const v of r[6]) bytes += v === null ? 0 : wireSize(v, true);
        records.push(r);
      }
      if (records.length === 0) continue;
      const applied = channel.send(to, stateChunkMsg(context, requestId, seq++, records), SYNC_ACK);
      applied.catch(() => {}); // awaited below, maybe after a later chunk failed first
      inFlight.push(applied);
      sent += records.length;
      if (inFlight.length >= WINDOW) await inFlight.shift();
      await new Promise((r) => setImmediate(r));
    }
    for (const applied of inFlight) await applied;
    const tombstones = Array.from(ctx.tombstones.keys());
    await channel.send(to, stateCompleteMsg(context, requestId, sent, tombstones), { options: 'use_ack' });
    logger.info({ to: to.name, sessions: sent, ms: Date.now() - started }, 'sent every session to a starting member');
  } catch (err) {
    logger.warn({ to: to.name, err: (err as Error).message }, 'state transfer to a starting member failed');
  }
}

/**
 * Answers the state requests of a context: streams every session (not awaited: the request's
 * acknowledgement goes back at once). One transfer per member at a time: another request from it
 * meanwhile is answered STATE_NONE (the asker tries the next member) and refused (counted), so a
 * member cannot make this node stream everything many times over at once.
 */
export class StateDonor {
  /** Members this node is sending every session to. */
  readonly #donating = new Set<string>();

  constructor(
    private readonly ctx: DonorContext,
    private readonly refuse: (from: Member, why: string) => void,
    private readonly post: (to: Member, message: StateNoneMsg) => void,
  ) {}

  answer(requestId: unknown, from: Member): void {
    if (this.#donating.has(from.id)) {
      this.refuse(from, 'a state request while one from it is being answered');
      this.post(from, stateNoneMsg(this.ctx.context, requestId));
      return;
    }
    this.#donating.add(from.id);
    void streamSessions(this.ctx, from, requestId).finally(() => this.#donating.delete(from.id));
  }
}
