/**
 * The TCP receiver: accepts peers' connections, runs the hello (authenticating it with the
 * cluster key), then hands DATA frames to the channel and answers PINGs and acknowledgements on
 * the same connection. Anything malformed closes that connection, is counted and logged once per
 * peer address; the receiver itself never stops for bad input.
 *
 * Connection slots are bounded: per address (maxConnectionsPerAddress) and in total; a connection
 * must hello and then send its first frame (with a key: an authenticated record, which a replayed
 * hello cannot produce) each within handshakeTimeoutMs; a hello nonce seen before is refused; a
 * connection silent for idleTimeoutMs is closed.
 *
 * With `localPath`, the same connections are also accepted on a local (abstract Unix) socket for
 * peers on this host (local-socket.ts): same hello, same limits, its address counted as "local".
 */
import { createServer, type ListenOptions, type Server, type Socket } from 'node:net';
import { ClusterError, ErrorCode, FrameError, ProtocolVersionError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { RecordOpener, RecordSealer } from '../wire/auth.js';
import {
  type AssemblyPolicy,
  encodeNack,
  encodeSeqFrame,
  FrameFlag,
  FrameType,
  HEADER_BYTES,
  writeHeader,
} from '../wire/frame.js';
import { decodeHello, encodeHello } from '../wire/hello.js';
import type { MemberDescriptor } from '../wire/member.js';
import { FrameSink } from './frame-sink.js';
import { FrameWriter } from './frame-writer.js';
import { AuthFailure } from './record-reader.js';
import { SeenNonces } from './seen-nonces.js';
import type { TransportSettings } from './settings.js';

/** An accepted, authenticated connection from a peer. */
export class InboundConnection {
  /** Free slot for the channel (it caches the sender's Member here). */
  tag: unknown = undefined;
  constructor(
    readonly remote: MemberDescriptor,
    private readonly writer: FrameWriter,
    readonly remoteAddress: string,
  ) {}

  /** Acknowledges DATA/PING `seq`. */
  ack(seq: number): void {
    this.writer.push(encodeSeqFrame(FrameType.ACK, seq));
  }

  /** Queues a raw frame. */
  push(frame: Buffer): void {
    this.writer.push(frame);
  }

  /** Refuses DATA `seq`: the sender's promise rejects with `reason`. */
  nack(seq: number, reason: string): void {
    this.writer.push(encodeNack(seq, reason));
  }
}

/** What the receiver delivers to the channel. */
export interface ReceiverHandlers {
  /**
   * A DATA frame. `payload` is a view; when `borrowed` it lies in a reused buffer and is valid only
   * during the call (copy to keep it), otherwise it stays valid as long as it is referenced.
   */
  data(conn: InboundConnection, flags: number, seq: number, payload: Buffer, borrowed: boolean): void;
  /** The peer announced a graceful stop; a returned promise delays the acknowledgement until it settles. */
  leave(conn: InboundConnection): void | Promise<void>;
  /** A peer completed its hello and sent its first (with a key: authenticated) frame. */
  hello?(conn: InboundConnection): void;
  /** The last connection from member `conn.remote.id` closed (counted from its hello, proven or not). */
  closed?(conn: InboundConnection): void;
}

export interface ReceiverOptions {
  readonly host: string;
  readonly port: number;
  readonly autoBind: number;
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
  /** Also accept on this abstract Unix socket (local-socket.ts); undefined: TCP only. */
  readonly localPath?: string;
  /**
   * Shared by every inbound connection: while `reuse` is on, DATA frames that span socket reads
   * are assembled in one reused buffer per connection and delivered `borrowed`.
   */
  readonly assembly?: AssemblyPolicy;
}

/** Hello frames are small; before the hello completes, nothing larger is buffered. */
const PRE_HELLO_LIMIT = 8 * 1024;
/** The per-address slot key of connections on the local socket (they have no IP address). */
const LOCAL_ADDRESS = 'local';
/** Hello nonces remembered at most (about 3 MB); see SeenNonces. */
const MAX_NONCES = 50_000;

/**
 * Per socket: whether bytes arrived since the last idle sweep and since when it is silent; frames
 * completed, and since when a partial frame waits for its end (slowloris).
 */
interface Activity {
  active: boolean;
  silentSince: number;
  frames: number;
  framesSeen: number;
  stalledSince: number;
  sink: FrameSink | undefined;
}

export class Receiver {
  #server: Server | undefined;
  #localServer: Server | undefined;
  #closed: Promise<void> | undefined;
  #sockets = new Map<Socket, Activity>();
  #perAddress = new Map<string, number>();
  /** Connections past their hello per member id (a member's probes come on connections of their own). */
  #perMember = new Map<string, number>();
  #idleTimer: NodeJS.Timeout | undefined;
  readonly #nonces: SeenNonces;
  #loggedPeers = new Set<string>();
  /** The bound address. */
  host = '';
  port = 0;

  constructor(
    private readonly options: ReceiverOptions,
    private readonly settings: TransportSettings,
    private readonly handlers: ReceiverHandlers,
    private readonly logger: Logger,
  ) {
    this.#nonces = new SeenNonces(settings.replayWindowMs * 2, MAX_NONCES);
  }

  /** Binds the first free port of [port, port + autoBind) (any port when port is 0). */
  async listen(): Promise<{ host: string; port: number }> {
    const { host, port, autoBind } = this.options;
    const tries = port === 0 ? 1 : autoBind;
    let lastError: Error | undefined;
    for (let i = 0; i < tries && port + i <= 65535; i++) {
      let server: Server;
      try {
        server = await this.#serve({ host, port: port === 0 ? 0 : port + i, exclusive: true });
      } catch (err) {
        lastError = err as Error;
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
        break;
      }
      this.#server = server;
      this.#idleTimer = setInterval(() => this.#sweepIdle(), Math.max(250, this.settings.idleTimeoutMs / 4));
      this.#idleTimer.unref();
      const addr = server.address();
      if (addr === null || typeof addr === 'string') throw new ClusterError(ErrorCode.BIND, 'receiver has no address');
      this.host = host;
      this.port = addr.port;
      const path = this.options.localPath;
      if (path !== undefined) {
        // Never fatal: peers on this host then connect over TCP.
        this.#localServer = await this.#serve({ path }).catch((err) => {
          this.logger.warn({ err }, 'cannot listen on the local socket: peers on this host connect over TCP');
          return undefined;
        });
      }
      return { host, port: addr.port };
    }
    throw new ClusterError(
      ErrorCode.BIND,
      `cannot bind the receiver on ${host} ports ${port}-${port + tries - 1} (receiver.port, receiver.autoBind): ${lastError?.message}`,
      { cause: lastError },
    );
  }

  /** A server whose connections this receiver accepts, once it listens (rejects with the listen error). */
  #serve(at: ListenOptions): Promise<Server> {
    // Connections on the local socket have no IP address: they share the per-address slot "local".
    const address = at.path === undefined ? undefined : LOCAL_ADDRESS;
    const server = createServer({ noDelay: true }, (socket) =>
      this.#accept(socket, address ?? socket.remoteAddress ?? '?'),
    );
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(at, () => {
        server.off('error', reject);
        server.on('error', (err) => this.logger.error({ err }, 'receiver error'));
        resolve(server);
      });
    });
  }

  /**
   * Stops accepting new connections (they are refused at once); open ones stay. A leaving node
   * does this before its LEAVING heartbeat, so peers that verify it find it gone.
   */
  stopAccepting(): void {
    const servers = [this.#server, this.#localServer].filter((x) => x !== undefined);
    this.#server = undefined;
    this.#localServer = undefined;
    if (servers.length > 0)
      this.#closed = Promise.all(servers.map((x) => new Promise<void>((resolve) => x.close(() => resolve())))).then(
        () => undefined,
      );
  }

  /**
   * True while a connection whose hello named member `id` is open (within handshakeTimeoutMs of
   * its hello it may not have proven the key yet: a replayed hello counts that long at most).
   */
  connectedFrom(id: string): boolean {
    return this.#perMember.has(id);
  }

  /** Stops accepting and closes every inbound connection. */
  async close(): Promise<void> {
    this.stopAccepting();
    clearInterval(this.#idleTimer);
    for (const s of this.#sockets.keys()) s.destroy();
    this.#sockets.clear();
    await this.#closed;
  }

  #accept(socket: Socket, address: string): void {
    const s = this.settings;
    // One budget for the TCP and the local socket (a server's own maxConnections counts only its own).
    if (this.#sockets.size >= this.options.maxConnections) {
      s.stats.connectionsRefused++;
      socket.destroy();
      return;
    }
    const fromAddress = (this.#perAddress.get(address) ?? 0) + 1;
    if (fromAddress > this.options.maxConnectionsPerAddress) {
      s.stats.connectionsRefusedPerAddress++;
      socket.destroy();
      return;
    }
    this.#perAddress.set(address, fromAddress);
    s.stats.connectionsAccepted++;
    const activity: Activity = {
      active: true,
      silentSince: 0,
      frames: 0,
      framesSeen: 0,
      stalledSince: 0,
      sink: undefined,
    };
    const peer = `${address}:${socket.remotePort ?? 'socket'}`;
    const writer = new FrameWriter(socket, s.stats);
    let conn: InboundConnection | undefined;
    /** The hello completed but no frame followed yet (with a key: no authenticated record). */
    let unproven = true;
    /** The peer's verified hello named a protocol version range this node does not share. */
    let versionRefused = false;
    const sink: FrameSink = new FrameSink(
      PRE_HELLO_LIMIT,
      (type, flags, body, borrowed) => {
        activity.frames++;
        if (conn === undefined) {
          if (type !== FrameType.HELLO) throw new FrameError(`expected HELLO, got frame type ${type}`);
          conn = this.#hello(flags, body, writer, sink, socket, address);
          timer.refresh(); // the first record must follow within handshakeTimeoutMs again
          // Counted from the hello: a member's LEAVE may be the first record that follows it.
          this.#perMember.set(conn.remote.id, (this.#perMember.get(conn.remote.id) ?? 0) + 1);
          return;
        }
        if (unproven) {
          // A replayed hello gets this far, but cannot produce a record the new keys open.
          unproven = false;
          clearTimeout(timer);
          this.handlers.hello?.(conn);
        }
        this.#frame(conn, type, flags, body, borrowed);
      },
      s.stats,
      this.options.assembly,
    );
    activity.sink = sink;
    this.#sockets.set(socket, activity);
    const timer = setTimeout(() => {
      s.stats.protocolErrors++;
      s.stats.handshakeTimeouts++;
      const what = conn === undefined ? 'no hello' : 'no authenticated record after the hello';
      this.#reject(socket, peer, new FrameError(`${what} within ${s.handshakeTimeoutMs} ms`));
    }, s.handshakeTimeoutMs);
    socket.on('end', () => {
      if (sink.midFrame) {
        s.stats.protocolErrors++;
        this.#reject(socket, peer, new FrameError('stream ended in the middle of a frame'));
      }
    });
    socket.on('data', (chunk: Buffer) => {
      activity.active = true;
      if (versionRefused) return; // answered and ending: nothing more is read
      try {
        sink.push(chunk);
      } catch (err) {
        if (err instanceof ProtocolVersionError && err.hello !== undefined) {
          versionRefused = true;
          clearTimeout(timer);
          this.#refuseVersion(err, err.hello, socket, peer);
          return;
        }
        if (err instanceof AuthFailure || (err instanceof ClusterError && err.code === ErrorCode.AUTH))
          s.stats.authFailures++;
        else s.stats.protocolErrors++;
        this.#reject(socket, peer, err as Error);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      writer.close(new ClusterError(ErrorCode.STOPPED, 'connection closed'));
      this.#sockets.delete(socket);
      const n = (this.#perAddress.get(address) ?? 1) - 1;
      if (n <= 0) this.#perAddress.delete(address);
      else this.#perAddress.set(address, n);
      if (conn !== undefined) {
        const left = (this.#perMember.get(conn.remote.id) ?? 1) - 1;
        if (left > 0) this.#perMember.set(conn.remote.id, left);
        else {
          this.#perMember.delete(conn.remote.id);
          this.handlers.closed?.(conn);
        }
      }
    });
  }

  /**
   * Closes connections silent for idleTimeoutMs (peers PING idle connections more often), and
   * those whose partial frame has not completed for as long: a slowloris trickling bytes keeps a
   * connection active, but not a frame buffer.
   */
  #sweepIdle(): void {
    const now = Date.now();
    const limit = this.settings.idleTimeoutMs;
    for (const [socket, a] of this.#sockets) {
      if (a.active) {
        a.active = false;
        a.silentSince = now;
      } else if (now - a.silentSince >= limit) {
        this.settings.stats.idleTimeouts++;
        socket.destroy();
        continue;
      }
      if (a.frames !== a.framesSeen || a.sink?.midFrame !== true) {
        a.framesSeen = a.frames;
        a.stalledSince = now;
      } else if (now - a.stalledSince >= limit) {
        this.settings.stats.slowFrames++;
        socket.destroy();
      }
    }
  }

  #hello(
    flags: number,
    body: Buffer,
    writer: FrameWriter,
    sink: FrameSink,
    socket: Socket,
    address: string,
  ): InboundConnection {
    const s = this.settings;
    const hello = decodeHello(FrameType.HELLO, flags, body, s.keys, s.replayWindowMs);
    if (this.#nonces.check(hello.nonce, Date.now())) {
      s.stats.helloReplays++;
      throw new ClusterError(ErrorCode.AUTH, 'hello replayed: its nonce was seen before');
    }
    if (s.keys && ((flags & FrameFlag.ENCRYPT) !== 0) !== s.encrypt) {
      throw new ClusterError(
        ErrorCode.AUTH,
        `peer's encrypt setting differs from this node's (${s.encrypt}): use the same on every node`,
      );
    }
    // Answered, and the connection's records sealed, under the key the client's hello was made with.
    const { frame, nonce } = encodeHello(
      FrameType.HELLO_ACK,
      s.localDescriptor(),
      s.keys,
      s.encrypt,
      hello.nonce,
      hello.keyIndex,
    );
    socket.write(frame);
    if (s.keys) {
      const { c2s, s2c } = s.keys.recordKeys(hello.nonce, nonce, hello.keyIndex);
      sink.setOpener(new RecordOpener(c2s, s.encrypt));
      writer.setSealer(new RecordSealer(s2c, s.encrypt));
    }
    sink.setLimit(s.maxFrameBytes);
    return new InboundConnection(hello.member, writer, address);
  }

  /**
   * Refuses a peer that shares no protocol version with this node, after its hello verified: counts
   * it, answers with this node's own (authenticated) hello so the peer learns why and refuses this
   * node too, then closes. A replayed hello gets no answer.
   */
  #refuseVersion(
    err: ProtocolVersionError,
    hello: { nonce: Buffer; keyIndex: number },
    socket: Socket,
    peer: string,
  ): void {
    const s = this.settings;
    if (this.#nonces.check(hello.nonce, Date.now())) {
      s.stats.helloReplays++;
      s.stats.authFailures++;
      socket.destroy();
      return;
    }
    s.stats.refusedProtocolVersion++;
    s.versionRefused?.(err, peer, 'hello');
    const { frame } = encodeHello(
      FrameType.HELLO_ACK,
      s.localDescriptor(),
      s.keys,
      s.encrypt,
      hello.nonce,
      hello.keyIndex,
    );
    socket.end(frame);
    // The peer closes once it read the answer; one that does not is cut off.
    setTimeout(() => socket.destroy(), s.handshakeTimeoutMs).unref();
  }

  #frame(conn: InboundConnection, type: FrameType, flags: number, body: Buffer, borrowed: boolean): void {
    switch (type) {
      case FrameType.DATA: {
        if (body.length < 4) throw new FrameError('DATA frame without sequence number');
        const seq = body.readUInt32BE(0);
        this.handlers.data(conn, flags, seq, body.subarray(4), borrowed);
        return;
      }
      case FrameType.PING: {
        // The answer carries our current descriptor, so pingers see payload changes.
        if (body.length !== 4) throw new FrameError('bad PING frame');
        const desc = this.settings.localDescriptor();
        const ack = Buffer.allocUnsafe(HEADER_BYTES + 4 + desc.length);
        writeHeader(ack, 0, FrameType.ACK, 0, 4 + desc.length);
        body.copy(ack, HEADER_BYTES, 0, 4);
        desc.copy(ack, HEADER_BYTES + 4);
        conn.push(ack);
        return;
      }
      case FrameType.LEAVE:
        if (body.length !== 4) throw new FrameError('bad LEAVE frame');
        {
          // Acknowledged after the leave is processed: the leaver may then close.
          const seq = body.readUInt32BE(0);
          const processed = this.handlers.leave(conn);
          if (processed === undefined) conn.ack(seq);
          else processed.then(() => conn.ack(seq));
          return;
        }
      default:
        throw new FrameError(`unexpected frame type ${type} on an inbound connection`);
    }
  }

  #reject(socket: Socket, peer: string, err: Error): void {
    const host = peer.slice(0, peer.lastIndexOf(':'));
    if (!this.#loggedPeers.has(host)) {
      if (this.#loggedPeers.size >= 1000) this.#loggedPeers.clear();
      this.#loggedPeers.add(host);
      this.logger.warn(
        { peer, reason: err.message },
        'closed a cluster connection that broke the protocol (logged once per address; see stats)',
      );
    }
    socket.destroy();
  }
}
