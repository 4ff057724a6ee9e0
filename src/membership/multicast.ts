/**
 * Multicast heartbeat membership (Tomcat's McastService): every `frequencyMs` each member sends
 * its descriptor to the group; a member not heard from for `dropTimeMs` is reported as timed out.
 * Own heartbeats, other domains' and replayed ones are ignored; a graceful stop sends a
 * LEAVING heartbeat so peers drop the member at once. Without a cluster key anyone on the network
 * can send heartbeats, so none may remove a live member on its own word: a LEAVING or a restart
 * is verified over TCP (MemberTable), a sequence far ahead is refused without becoming the floor
 * (SequenceFloors), and a known id keeps its address.
 */
import { createSocket, type Socket } from 'node:dgram';
import type { MulticastConfig } from '../config/channel-config.js';
import { ProtocolVersionError } from '../core/errors.js';
import { isLoopback } from '../core/net.js';
import { decodeHeartbeat, encodeHeartbeat, HeartbeatKind } from '../wire/heartbeat.js';
import type { MemberDescriptor } from '../wire/member.js';
import {
  type MembershipContext,
  type MembershipCounters,
  type MembershipService,
  MemberTable,
  newMembershipCounters,
} from './membership.js';
import { SequenceFloors } from './sequence-floors.js';

/** "Far ahead" for a heartbeat sequence: more than five minutes' worth of heartbeats (at least 1000). */
const JUMP_WINDOW_MS = 300_000;

export class MulticastMembership implements MembershipService {
  readonly kind = 'multicast';
  #socket: Socket | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ctx: MembershipContext | undefined;
  #table: MemberTable | undefined;
  #seq = BigInt(Date.now()) * 1000n;
  #startedAt = 0; // grows across restarts of the same id too
  #floors: SequenceFloors | undefined;
  readonly #counters = newMembershipCounters();

  constructor(private readonly config: MulticastConfig) {}

  async start(ctx: MembershipContext): Promise<void> {
    this.#ctx = ctx;
    this.#startedAt = Date.now();
    const c = this.config;
    this.#table = new MemberTable(ctx.events, {
      graveMs: c.dropTimeMs,
      refutedMs: c.dropTimeMs,
      verify: (m) => ctx.verify(m),
      counters: this.#counters,
      refused: (reason, from) => ctx.countRefused(reason, from),
    });
    // With a key, a captured heartbeat fails the timestamp check once its sender's clock and ours
    // (which may differ by up to the window) have both moved a window on: keep floors that long.
    this.#floors = new SequenceFloors(
      BigInt(Math.max(1000, Math.ceil(JUMP_WINDOW_MS / c.frequencyMs))),
      ctx.keys ? 2 * ctx.replayWindowMs + c.dropTimeMs : c.dropTimeMs,
    );
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
      const now = Date.now();
      this.#table!.expire(now, c.dropTimeMs);
      this.#floors!.prune(now);
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

  left(id: string): Promise<void> | undefined {
    // Whoever completed a hello may say it; a real leaver no longer accepts connections by now.
    return this.#table?.leaving(id, Date.now());
  }

  stats(): MembershipCounters {
    return { ...this.#counters };
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
      if (err instanceof ProtocolVersionError && ctx.versionRefused) ctx.versionRefused(err, from);
      else ctx.countRefused((err as Error).message, from);
      return;
    }
    const m = hb.member;
    if (m.id === ctx.localId || m.domain !== ctx.domain) return; // own, or another cluster partition's
    const table = this.#table!;
    const now = Date.now();
    // A descriptor conflict is refused before its sequence can move the floor.
    if (table.conflicts(m)) return;
    const verdict = this.#floors!.check(m.id, hb.seq, now);
    if (verdict !== 'new') {
      if (verdict === 'replay') this.#counters.replays++;
      else this.#counters.sequenceJumps++;
      ctx.countRefused(verdict === 'replay' ? 'replayed or reordered heartbeat' : 'heartbeat sequence far ahead', from);
      return;
    }
    if (hb.kind === HeartbeatKind.LEAVING) table.leaving(m.id, now);
    else table.seen(m, now);
  }
}
