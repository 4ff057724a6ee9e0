/**
 * The outbound connection to one peer: connect, hello, then batched DATA/PING frames out and
 * ACK/NACK frames back. Messages sent while connecting wait in a bounded backlog. A lost
 * connection is reported at once (the failure detector suspects the peer) and, while there is
 * something to deliver, re-established with exponential backoff up to maxRetryAttempts times.
 * A connection to a known member (its id expected) first tries the member's local socket
 * (local-socket.ts) when `localSockets` is on; where nobody listens there, it connects over TCP
 * in the same attempt.
 */
import { connect, type Socket } from 'node:net';
import { ClusterError, ErrorCode, FrameError, ProtocolVersionError } from '../core/errors.js';
import { RecordOpener, RecordSealer } from '../wire/auth.js';
import { FrameType, HEADER_BYTES, writeHeader } from '../wire/frame.js';
import { decodeHello, encodeHello } from '../wire/hello.js';
import { decodeMember, type MemberDescriptor } from '../wire/member.js';
import { FrameSink } from './frame-sink.js';
import { FrameWriter } from './frame-writer.js';
import { isLocalMiss, localSocketPath } from './local-socket.js';
import { AuthFailure } from './record-reader.js';
import type { TransportSettings } from './settings.js';

interface Pending {
  resolve: (m: MemberDescriptor) => void;
  reject: (e: ClusterError) => void;
  deadline: number;
  timeoutMs: number;
  /** The frame: header (with sequence), and for large payloads the payload as a second part. */
  head: Buffer;
  body: Buffer | undefined;
  attempts: number;
}

/** Payloads at least this large are written from the caller's buffer instead of being copied. */
const NO_COPY_BYTES = 16 * 1024;

type State = 'idle' | 'connecting' | 'open' | 'closed';

/** Called when the connection is lost or cannot be made (the peer may be dead). */
export type DownHandler = (conn: PeerConnection, error: ClusterError) => void;

export class PeerConnection {
  #state: State = 'idle';
  #socket: Socket | undefined;
  #writer: FrameWriter | undefined;
  #backlog: Buffer[] = [];
  #backlogBytes = 0;
  #pending = new Map<number, Pending>();
  #seq = 0;
  #failures = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #ackTimer: NodeJS.Timeout | undefined;
  #ackTimerAt = 0;
  #clientNonce: Buffer | undefined;
  #keepAliveTimer: NodeJS.Timeout | undefined;
  /** Something was queued since the last keep-alive tick. */
  #busy = false;
  /** The socket of this attempt is the member's local socket (else TCP). */
  #viaLocal = false;
  /** The peer's descriptor from its last hello. */
  remote: MemberDescriptor | undefined;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly settings: TransportSettings,
    private readonly onDown: DownHandler,
    /** When set, a hello from a member with another id fails the connection (the member restarted). */
    readonly expectedId?: string,
  ) {}

  get state(): State {
    return this.#state;
  }

  /** Bytes waiting for this peer: backlog, batch and socket buffer. */
  get pendingBytes(): number {
    return this.#backlogBytes + (this.#writer?.pendingBytes ?? 0);
  }

  /**
   * Sends a DATA frame. With `ack`, resolves when the peer acknowledged (per the flags: on receipt
   * or after processing) and rejects on NACK, timeout or loss; otherwise resolves when written to
   * the socket. Throws ERR_CLOWDER_QUEUE_FULL synchronously (as a rejection) when the queue is full.
   */
  send(flags: number, payload: Uint8Array, ack: boolean, timeoutMs = this.settings.timeoutMs): Promise<void> {
    const head = this.#dataFrame(flags, payload);
    if (head instanceof ClusterError) return Promise.reject(head);
    const body = payload.length >= NO_COPY_BYTES ? toBuffer(payload) : undefined;
    if (ack) return this.#expectAck(head, body, timeoutMs).then(noop);
    this.#enqueue(head, body);
    if (this.#state === 'open') return this.#writer!.whenWritten();
    return new Promise((resolve, reject) => this.#whenOpen.push({ resolve, reject }));
  }

  /** Fire and forget: queues a DATA frame; returns an error instead of throwing when it cannot. */
  post(flags: number, payload: Uint8Array): ClusterError | undefined {
    const head = this.#dataFrame(flags, payload);
    if (head instanceof ClusterError) return head;
    this.#enqueue(head, payload.length >= NO_COPY_BYTES ? toBuffer(payload) : undefined);
    return undefined;
  }

  /**
   * Fire and forget a DATA frame the caller already built (header with sequence 0 included): the
   * channel encodes an asynchronous message once, straight behind the header, and hands the same
   * frame to every destination. The frame must not be modified afterwards.
   */
  postFrame(frame: Buffer): ClusterError | undefined {
    const err = this.#check(frame.length - HEADER_BYTES - 4);
    if (err) return err;
    this.#enqueue(frame, undefined);
    return undefined;
  }

  /** Writes the batch to the socket now (see FrameWriter.flush); a connection not yet open keeps its backlog. */
  flushNow(): void {
    if (this.#state === 'open') this.#writer!.flush();
  }

  /** Connects now (if idle) so the first message does not wait for the hello. */
  warm(): void {
    if (this.#state === 'idle' && this.#retryTimer === undefined) this.#connect();
  }

  /** Resolves once everything queued so far is written to the socket (at once when idle). */
  drained(): Promise<void> {
    if (this.#state === 'open') return this.#writer!.whenWritten().catch(noop);
    if (this.#state === 'connecting' && this.#backlog.length > 0) {
      return new Promise<void>((resolve) => this.#whenOpen.push({ resolve, reject: () => resolve() }));
    }
    return Promise.resolve();
  }

  /** Liveness check over this connection: resolves with the peer's descriptor once it answers. */
  ping(timeoutMs: number): Promise<MemberDescriptor> {
    const frame = Buffer.allocUnsafe(HEADER_BYTES + 4);
    writeHeader(frame, 0, FrameType.PING, 0, 4);
    return this.#expectAck(frame, undefined, timeoutMs);
  }

  /**
   * Tells the peer we are leaving (graceful stop) and resolves once it has processed that (or
   * after `timeoutMs`), so it hears "leave" before it can see our sockets close. Connects first
   * if needed: a peer we never sent to still has a connection to us that is about to close.
   */
  leave(timeoutMs: number): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve();
    const frame = Buffer.allocUnsafe(HEADER_BYTES + 4);
    writeHeader(frame, 0, FrameType.LEAVE, 0, 4);
    return this.#expectAck(frame, undefined, timeoutMs).then(noop, noop);
  }

  /** Closes for good: rejects everything outstanding with `reason`. */
  close(reason = new ClusterError(ErrorCode.STOPPED, 'connection closed')): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#retryTimer);
    this.#teardown(reason);
    this.#failAll(reason);
  }

  #whenOpen: { resolve: () => void; reject: (e: Error) => void }[] = [];

  #check(payloadLength: number): ClusterError | undefined {
    if (this.#state === 'closed') {
      return new ClusterError(ErrorCode.STOPPED, `connection to ${this.host}:${this.port} is closed`);
    }
    if (payloadLength + 4 > this.settings.maxFrameBytes) {
      return new ClusterError(
        ErrorCode.MESSAGE_TOO_LARGE,
        `message of ${payloadLength} bytes exceeds maxFrameBytes ${this.settings.maxFrameBytes}; enable the fragmentation interceptor or raise maxFrameBytes`,
      );
    }
    if (this.pendingBytes + payloadLength > this.settings.maxQueueBytes) {
      return new ClusterError(
        ErrorCode.QUEUE_FULL,
        `queue to ${this.host}:${this.port} is full (${this.settings.maxQueueBytes} bytes, sender.maxQueueBytes): the member is slow or unreachable`,
      );
    }
    return undefined;
  }

  #dataFrame(flags: number, payload: Uint8Array): Buffer | ClusterError {
    const err = this.#check(payload.length);
    if (err) return err;
    // Small payloads are copied behind the header (one buffer); large ones travel as a second part.
    if (payload.length >= NO_COPY_BYTES) {
      const head = Buffer.allocUnsafe(HEADER_BYTES + 4);
      writeHeader(head, 0, FrameType.DATA, flags, 4 + payload.length);
      return head;
    }
    const frame = Buffer.allocUnsafe(HEADER_BYTES + 4 + payload.length);
    writeHeader(frame, 0, FrameType.DATA, flags, 4 + payload.length);
    frame.set(payload, HEADER_BYTES + 4);
    return frame;
  }

  #expectAck(head: Buffer, body: Buffer | undefined, timeoutMs: number): Promise<MemberDescriptor> {
    if (this.#state === 'closed') return Promise.reject(new ClusterError(ErrorCode.STOPPED, 'connection closed'));
    const seq = (this.#seq = (this.#seq + 1) >>> 0);
    head.writeUInt32BE(seq, HEADER_BYTES);
    return new Promise<MemberDescriptor>((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      this.#pending.set(seq, { resolve, reject, deadline, timeoutMs, head, body, attempts: 0 });
      this.#armAckTimer(deadline);
      this.#enqueue(head, body);
    });
  }

  /**
   * One timer per connection for every outstanding acknowledgement (not one per message): it fires
   * at the earliest deadline, fails what is overdue and re-arms for the next.
   */
  #armAckTimer(deadline: number): void {
    if (this.#ackTimer !== undefined && this.#ackTimerAt <= deadline) return;
    clearTimeout(this.#ackTimer);
    this.#ackTimerAt = deadline;
    this.#ackTimer = setTimeout(() => this.#sweepAcks(), Math.max(0, deadline - Date.now()));
  }

  #sweepAcks(): void {
    this.#ackTimer = undefined;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [seq, p] of this.#pending) {
      if (p.deadline <= now) {
        this.#pending.delete(seq);
        p.reject(
          new ClusterError(
            ErrorCode.SEND_TIMEOUT,
            `no acknowledgement from ${this.host}:${this.port} within ${p.timeoutMs} ms`,
          ),
        );
      } else if (p.deadline < next) next = p.deadline;
    }
    if (next !== Number.POSITIVE_INFINITY) this.#armAckTimer(next);
  }

  #enqueue(head: Buffer, body: Buffer | undefined): void {
    this.#busy = true;
    if (this.#state === 'open') {
      this.#writer!.push(head);
      if (body !== undefined) this.#writer!.push(body);
      return;
    }
    this.#backlog.push(head);
    this.#backlogBytes += head.length;
    if (body !== undefined) {
      this.#backlog.push(body);
      this.#backlogBytes += body.length;
    }
    if (this.#state === 'idle' && this.#retryTimer === undefined) {
      if (this.#failures === 0) this.#connect();
      else this.#retryTimer = setTimeout(() => this.#connect(), this.#backoff());
    }
  }

  #backoff(): number {
    return Math.min(this.settings.reconnectMaxMs, this.settings.reconnectMinMs * 2 ** Math.max(0, this.#failures - 1));
  }

  /** Connects: to the member's local socket first when it may be on this host (`tcp` false), else over TCP. */
  #connect(tcp = false): void {
    this.#retryTimer = undefined;
    if (this.#state !== 'idle') return;
    this.#state = 'connecting';
    const s = this.settings;
    const local = !tcp && s.localSockets && this.expectedId !== undefined;
    this.#viaLocal = local;
    const socket = local
      ? connect({ path: localSocketPath(this.expectedId!) })
      : connect({ host: this.host, port: this.port, noDelay: true });
    this.#socket = socket;
    const writer = new FrameWriter(socket, s.stats);
    this.#writer = writer;
    const sink = new FrameSink(
      s.maxFrameBytes,
      (type, flags, body) => this.#onFrame(type, flags, body, sink, writer),
      s.stats,
    );
    this.#handshakeTimer = setTimeout(() => {
      socket.destroy(
        new ClusterError(
          ErrorCode.SEND_TIMEOUT,
          `no hello from ${this.host}:${this.port} within ${s.connectTimeoutMs} ms`,
        ),
      );
    }, s.connectTimeoutMs);
    let connected = false;
    let missed = false;
    socket.on('connect', () => {
      connected = true;
      const { frame, nonce } = encodeHello(FrameType.HELLO, s.localDescriptor(), s.keys, s.encrypt);
      this.#clientNonce = nonce;
      socket.write(frame);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        sink.push(chunk);
      } catch (err) {
        if (err instanceof ProtocolVersionError) {
          // The peer's verified answer names versions this node does not speak.
          s.stats.refusedProtocolVersion++;
          s.versionRefused?.(err, `${this.host}:${this.port}`, 'hello answer');
        } else if (err instanceof AuthFailure) s.stats.authFailures++;
        else s.stats.protocolErrors++;
        socket.destroy(err as Error);
      }
    });
    socket.on('error', (err) => {
      // Nobody listens on that local socket (another host or namespace, or TCP only): TCP now.
      if (local && !connected && isLocalMiss(err)) missed = true;
    });
    socket.on('close', () => {
      if (missed && socket === this.#socket && this.#state === 'connecting') {
        s.stats.localMisses++;
        this.#teardown(new ClusterError(ErrorCode.STOPPED, 'connection closed'));
        this.#state = 'idle';
        this.#connect(true);
      } else this.#onClose(socket);
    });
  }

  #onFrame(type: FrameType, flags: number, body: Buffer, sink: FrameSink, writer: FrameWriter): void {
    const s = this.settings;
    switch (type) {
      case FrameType.HELLO_ACK: {
        if (this.#state !== 'connecting') throw new FrameError('unexpected HELLO_ACK');
        let hello: ReturnType<typeof decodeHello>;
        try {
          // The server answers under the key our hello was made with: our first.
          hello = decodeHello(FrameType.HELLO_ACK, flags, body, s.keys, s.replayWindowMs, this.#clientNonce, 0);
        } catch (err) {
          if (err instanceof ClusterError && err.code === ErrorCode.AUTH) throw new AuthFailure(err.message);
          throw err;
        }
        if (this.expectedId !== undefined && hello.member.id !== this.expectedId) {
          throw new ClusterError(
            ErrorCode.UNKNOWN_MEMBER,
            `${this.host}:${this.port} is now member ${hello.member.id}, not ${this.expectedId} (restarted)`,
          );
        }
        if (s.keys) {
          const { c2s, s2c } = s.keys.recordKeys(this.#clientNonce!, hello.nonce);
          writer.setSealer(new RecordSealer(c2s, s.encrypt));
          sink.setOpener(new RecordOpener(s2c, s.encrypt));
        }
        clearTimeout(this.#handshakeTimer);
        this.remote = hello.member;
        this.#state = 'open';
        this.#failures = 0;
        s.stats.connects++;
        if (this.#viaLocal) s.stats.localConnects++;
        const backlog = this.#backlog;
        this.#backlog = [];
        this.#backlogBytes = 0;
        for (const f of backlog) writer.push(f);
        // The receiver wants a first record at once (a replayed hello cannot send one), and an
        // idle connection it closes: PING when there is nothing else to send.
        if (backlog.length === 0) this.#keepAlive();
        this.#keepAliveTimer = setInterval(() => {
          if (!this.#busy) this.#keepAlive();
          this.#busy = false;
        }, s.idleTimeoutMs / 3);
        this.#keepAliveTimer.unref();
        const waiting = this.#whenOpen;
        this.#whenOpen = [];
        if (waiting.length > 0)
          writer.whenWritten().then(
            () => {
              for (const w of waiting) w.resolve();
            },
            (e: Error) => {
              for (const w of waiting) w.reject(e);
            },
          );
        return;
      }
      case FrameType.ACK:
      case FrameType.NACK: {
        if (this.#state !== 'open' || body.length < 4) throw new FrameError('unexpected acknowledgement');
        const seq = body.readUInt32BE(0);
        const p = this.#pending.get(seq);
        if (p === undefined) return; // late: already timed out
        this.#pending.delete(seq);
        if (type === FrameType.ACK) {
          if (body.length > 4) this.remote = decodeMember(body.subarray(4)); // a PING's answer: fresh descriptor
          p.resolve(this.remote!);
        } else {
          const len = body.length >= 6 ? body.readUInt16BE(4) : 0;
          const reason = body.toString('utf8', 6, Math.min(body.length, 6 + len));
          p.reject(
            new ClusterError(
              ErrorCode.REMOTE_PROCESSING,
              `${this.remote?.name ?? this.host} failed to process the message: ${reason}`,
            ),
          );
        }
        return;
      }
      default:
        throw new FrameError(`unexpected frame type ${type} on an outbound connection`);
    }
  }

  #keepAlive(): void {
    this.ping(this.settings.timeoutMs).catch(noop);
  }

  #teardown(reason: ClusterError): void {
    clearTimeout(this.#handshakeTimer);
    clearInterval(this.#keepAliveTimer);
    this.#keepAliveTimer = undefined;
    this.#writer?.close(reason);
    this.#writer = undefined;
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  #failAll(reason: ClusterError): void {
    for (const p of this.#pending.values()) p.reject(reason);
    this.#pending.clear();
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#backlog = [];
    this.#backlogBytes = 0;
    const waiting = this.#whenOpen;
    this.#whenOpen = [];
    for (const w of waiting) w.reject(reason);
  }

  #onClose(socket: Socket): void {
    if (socket !== this.#socket) return;
    const wasOpen = this.#state === 'open';
    if (this.#state === 'closed') return;
    const error = new ClusterError(
      ErrorCode.SEND_FAILED,
      wasOpen ? `connection to ${this.host}:${this.port} lost` : `cannot connect to ${this.host}:${this.port}`,
    );
    this.#teardown(error);
    this.#state = 'idle';
    if (wasOpen) this.settings.stats.disconnects++;
    this.#failures++;
    // Unacknowledged frames get another chance on the next connection, up to maxRetryAttempts.
    const retry: Buffer[] = [];
    for (const [seq, p] of this.#pending) {
      if (p.attempts < this.settings.maxRetryAttempts && this.#failures <= this.settings.maxRetryAttempts) {
        p.attempts++;
        retry.push(p.head);
        if (p.body !== undefined) retry.push(p.body);
      } else {
        this.#pending.delete(seq);
        p.reject(error);
      }
    }
    if (this.#failures > this.settings.maxRetryAttempts) {
      this.#failAll(error);
    } else if (retry.length > 0 || this.#backlog.length > 0) {
      this.#backlog = [...retry, ...this.#backlog];
      this.#backlogBytes = this.#backlog.reduce((n, f) => n + f.length, 0);
      this.#retryTimer = setTimeout(() => this.#connect(), this.#backoff());
    }
    this.onDown(this, error);
  }
}

function noop(): void {}

function toBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}
