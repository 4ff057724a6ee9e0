/**
 * Outbound connections of the channel, one per member, and the bottom of its send stack: frames
 * handed to each destination's connection; a failure that says something about a member's
 * liveness (a reset, a timeout: not a refusal by a live peer) is reported as a suspicion.
 */
import { SendFlag } from '../config/send-options.js';
import { type ClusterError, ErrorCode, type FaultyMember, SendError } from '../core/errors.js';
import { PeerConnection } from '../transport/peer-connection.js';
import type { TransportSettings } from '../transport/settings.js';
import { FrameType, HEADER_BYTES, writeHeader } from '../wire/frame.js';
import { RESOLVED } from './pipeline.js';
import type { Member, OutgoingMessage } from './types.js';

/** DATA frame header plus its sequence number: the room send() leaves before an encoded message. */
export const DATA_HEAD = HEADER_BYTES + 4;

export interface OutboundDeps {
  /** The transport settings (replaced once the keys are resolved). */
  settings(): TransportSettings;
  /** A connection to `m` broke or a send to it failed: it may be gone. */
  suspected(m: Member, err: ClusterError): void;
}

export class Outbound {
  readonly connections = new Map<string, PeerConnection>();
  /** Sends that failed for at least one member here. */
  sendErrors = 0;

  constructor(private readonly deps: OutboundDeps) {}

  /** The connection to `m`, opened (or reopened) on demand. */
  connectionFor(m: Member): PeerConnection {
    let conn = this.connections.get(m.id);
    if (conn === undefined || conn.state === 'closed') {
      conn = new PeerConnection(m.host, m.port, this.deps.settings(), (_c, err) => this.deps.suspected(m, err), m.id);
      this.connections.set(m.id, conn);
    }
    return conn;
  }

  /** The bottom of the send stack: hand the frame to each destination's connection. */
  transmit(msg: OutgoingMessage): Promise<void> {
    const wantAck = (msg.flags & SendFlag.USE_ACK) !== 0;
    const flags = msg.flags;
    const dests = msg.destinations;
    if (!msg.wait && !wantAck) {
      let faulty: FaultyMember[] | undefined;
      // The payload still sits where send() encoded it: write the header into the room before it
      // once, and queue that same frame for every destination (no copy per destination).
      const framed = msg.framed;
      const whole =
        framed !== undefined &&
        msg.payload.buffer === framed.buffer &&
        msg.payload.byteOffset === framed.byteOffset + DATA_HEAD &&
        msg.payload.length === framed.length - DATA_HEAD;
      if (whole) {
        writeHeader(framed, 0, FrameType.DATA, flags, 4 + msg.payload.length);
        framed.writeUInt32BE(0, HEADER_BYTES);
      }
      for (const m of dests) {
        const conn = this.connectionFor(m);
        const err = whole ? conn.postFrame(framed) : conn.post(flags, msg.payload);
        if (err) (faulty ??= []).push({ id: m.id, name: m.name, error: err });
      }
      if (faulty === undefined) return RESOLVED;
      this.sendErrors++;
      return Promise.reject(new SendError(faulty));
    }
    if (dests.length === 1) {
      const m = dests[0]!;
      return this.connectionFor(m)
        .send(flags, msg.payload, wantAck, msg.timeoutMs)
        .catch((err: ClusterError) => {
          this.#afterSendFailure(m, err);
          throw new SendError([{ id: m.id, name: m.name, error: err }]);
        });
    }
    return Promise.allSettled(
      dests.map((m) => this.connectionFor(m).send(flags, msg.payload, wantAck, msg.timeoutMs)),
    ).then((results) => {
      let faulty: FaultyMember[] | undefined;
      for (let i = 0; i < results.length; i++) {
        const r = results[i]!;
        if (r.status === 'rejected') {
          const m = dests[i]!;
          this.#afterSendFailure(m, r.reason);
          (faulty ??= []).push({ id: m.id, name: m.name, error: r.reason });
        }
      }
      if (faulty) throw new SendError(faulty);
    });
  }

  #afterSendFailure(m: Member, err: ClusterError): void {
    // A processing failure on a live peer says nothing about its liveness.
    if (
      err.code === ErrorCode.REMOTE_PROCESSING ||
      err.code === ErrorCode.QUEUE_FULL ||
      err.code === ErrorCode.MESSAGE_TOO_LARGE
    )
      return;
    this.deps.suspected(m, err);
  }

  /** Hands every queued message to its socket now. */
  flushNow(): void {
    for (const c of this.connections.values()) c.flushNow();
  }

  /** Resolves when every queued message has been written to its socket. */
  async flush(): Promise<void> {
    await Promise.all(Array.from(this.connections.values(), (c) => c.drained()));
  }

  /** Bytes queued for a member (or all members). */
  pendingBytes(member?: Member): number {
    if (member) return this.connections.get(member.id)?.pendingBytes ?? 0;
    let n = 0;
    for (const c of this.connections.values()) n += c.pendingBytes;
    return n;
  }

  /** Closes the connection to a member that left the view. */
  close(id: string, reason: ClusterError): void {
    const conn = this.connections.get(id);
    this.connections.delete(id);
    conn?.close(reason);
  }

  /** Delivers what is queued, then says goodbye on every connection (bounded by `timeoutMs`). */
  async leave(members: Iterable<Member>, timeoutMs: number): Promise<void> {
    for (const m of members) this.connectionFor(m);
    const conns = Array.from(this.connections.values());
    await withTimeout(Promise.all(conns.map((c) => c.drained().then(() => c.leave(timeoutMs)))), timeoutMs);
  }

  closeAll(reason: ClusterError): void {
    for (const c of this.connections.values()) c.close(reason);
    this.connections.clear();
  }
}

function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    p.then(
      () => {
        clearTimeout(t);
        resolve();
      },
      () => {
        clearTimeout(t);
        resolve();
      },
    );
  });
}
