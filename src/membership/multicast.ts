/**
 * Multicast heartbeat membership (Tomcat's McastService): every `frequencyMs` each member sends
 * its descriptor to the group; a member not heard from for `dropTimeMs` is reported as timed out.
 * Own heartbeats, other domains' and replayed ones are ignored; a graceful stop sends a
 * LEAVING heartbeat so peers drop the member at once.
 */
import { createSocket, type Socket } from 'node:dgram';
import type { MulticastConfig } from '../config/channel-config.js';
import { isLoopback } from '../core/net.js';
import { decodeHeartbeat, encodeHeartbeat, HeartbeatKind } from '../wire/heartbeat.js';
import type { MemberDescriptor } from '../wire/member.js';
import { type MembershipContext, type MembershipService, MemberTable } from './membership.js';

export class MulticastMembership implements MembershipService {
  readonly kind = 'multicast';
  #socket: Socket | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ctx: MembershipContext | undefined;
  #table: MemberTable | undefined;
  #seq = BigInt(Date.now()) * 1000n;
  #startedAt = 0; // grows across restarts of the same id too
  /** Highest heartbeat seq seen per member id (replay protection). */
  readonly #lastSeq = new Map<string, bigint>();

  constructor(private readonly config: MulticastConfig) {}

  async start(ctx: MembershipContext): Promise<void> {
    this.#ctx = ctx;
    this.#startedAt = Date.now();
    this.#table = new MemberTable(ctx.events, this.config.dropTimeMs);
    const c = this.config;
    if (isLoopback(ctx.local().host) && !isLoopback(c.interface)) {
      ctx.logger.warn(
        { receiverAddress: ctx.local().host, interface: c.interface },
        'this node advertises a loopback receiver address while multicasting on a non-loopback interface: other hosts will see it but cannot connect (set receiver.address)',
      );
    }
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    this.#socket = socket;
    socket.on('message', (msg, rinfo) => this.#onMessage(msg, `${rinfo.address}:${rinfo.port}`));
    socket.on('error', (err) => ctx.logger.warn({ err }, 'multicast socket error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      // exclusive: in a node:cluster worker a non-exclusive bind shares one socket through the
      // primary (each heartbeat would reach one worker, and addMembership fails with EADDRINUSE);
      // every member needs its own socket on the group port (reuseAddr). No effect elsewhere.
      socket.bind({ port: c.port, address: c.bind ?? c.address, exclusive: true }, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.addMembership(c.address, c.interface);
    socket.setMulticastInterface(c.interface);
    socket.setMulticastTTL(c.ttl);
    socket.setMulticastLoopback(true);
    this.#send(HeartbeatKind.ALIVE);
    this.#timer = setInterval(() => {
      this.#send(HeartbeatKind.ALIVE);
      this.#table!.expire(Date.now(), c.dropTimeMs);
    }, c.frequencyMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket === undefined) return;
    await new Promise<void>((resolve) => {
      const datagram = this.#heartbeat(HeartbeatKind.LEAVING);
      socket.send(datagram, this.config.port, this.config.address, () => resolve());
    });
    socket.close();
    this.#table?.clear();
  }

  /** Tomcat waits 2 × frequency "to establish membership": every live peer has sent a heartbeat by then. */
  settled(): Promise<void> {
    const wait = Math.max(0, this.#startedAt + 2 * this.config.frequencyMs - Date.now());
    return new Promise((resolve) => setTimeout(resolve, wait));
  }

  members(): MemberDescriptor[] {
    return this.#table?.list() ?? [];
  }

  forget(id: string): void {
    this.#table?.remove(id, 'unreachable', Date.now(), true);
  }

  left(id: string): void {
    this.#table?.remove(id, 'leave', Date.now());
  }

  heard(): void {
    // Heartbeats are the source of truth here; a hello alone does not make a member.
  }

  localChanged(): void {
    if (this.#socket) this.#send(HeartbeatKind.ALIVE);
  }

  #heartbeat(kind: HeartbeatKind): Buffer {
    return encodeHeartbeat(kind, this.#seq++, this.#ctx!.localDescriptor(), this.#ctx!.keys, this.#ctx!.encrypt);
  }

  #send(kind: HeartbeatKind): void {
    this.#socket?.send(this.#heartbeat(kind), this.config.port, this.config.address);
  }

  #onMessage(msg: Buffer, from: string): void {
    const ctx = this.#ctx!;
    let hb: ReturnType<typeof decodeHeartbeat>;
    try {
      hb = decodeHeartbeat(msg, ctx.keys, ctx.replayWindowMs, ctx.encrypt);
    } catch (err) {
      ctx.countRefused((err as Error).message, from);
      return;
    }
    const m = hb.member;
    if (m.id === ctx.localId || m.domain !== ctx.domain) return; // own, or another cluster partition's
    const last = this.#lastSeq.get(m.id);
    if (last !== undefined && hb.seq <= last) {
      ctx.countRefused('replayed or reordered heartbeat', from);
      return;
    }
    if (this.#lastSeq.size > 10_000) this.#lastSeq.clear();
    this.#lastSeq.set(m.id, hb.seq);
    if (hb.kind === HeartbeatKind.LEAVING) this.#table!.remove(m.id, 'leave', Date.now());
    else this.#table!.seen(m, Date.now());
  }
}
