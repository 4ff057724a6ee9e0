/**
 * A multicast "attacker" for membership tests: joins a test group on 127.0.0.1 (TTL 0), records
 * every heartbeat the nodes send (decoded, with the raw datagram for replays) and sends forged or
 * replayed datagrams to the group.
 */
import { createSocket, type Socket } from 'node:dgram';
import { ClusterKeys } from '../../src/wire/auth.js';
import { decodeHeartbeat, encodeHeartbeat, type Heartbeat, type HeartbeatKind } from '../../src/wire/heartbeat.js';
import { encodeMember, type MemberDescriptor } from '../../src/wire/member.js';

/** The default multicast group of a channel (membership.address). */
export const GROUP = '228.0.0.4';

export interface Captured {
  readonly raw: Buffer;
  readonly hb: Heartbeat;
}

export class Spoofer {
  readonly captured: Captured[] = [];
  /** Datagrams heard on the group (its own included), readable or not. */
  received = 0;
  #socket: Socket | undefined;
  readonly #keys: ClusterKeys | undefined;

  /**
   * `clusterKey` and `encrypt`: the cluster's settings, only to read what is captured (a replay
   * sends the captured bytes as they are; forging never uses the key).
   */
  constructor(
    readonly port: number,
    clusterKey?: string,
    private readonly encrypt = true,
  ) {
    this.#keys = clusterKey === undefined ? undefined : new ClusterKeys(clusterKey);
  }

  async start(): Promise<void> {
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    this.#socket = socket;
    socket.on('message', (raw) => {
      this.received++;
      try {
        this.captured.push({ raw: Buffer.from(raw), hb: decodeHeartbeat(raw, this.#keys, 3_600_000, this.encrypt) });
      } catch {
        // Not a heartbeat this spoofer can read (e.g. its own junk): ignored.
      }
    });
    await new Promise<void>((resolve) => socket.bind({ port: this.port, address: GROUP, exclusive: false }, resolve));
    socket.addMembership(GROUP, '127.0.0.1');
    socket.setMulticastInterface('127.0.0.1');
    socket.setMulticastTTL(0);
    socket.setMulticastLoopback(true);
  }

  /** Heartbeats captured from member `id`, oldest first. */
  from(id: string): Captured[] {
    return this.captured.filter((c) => c.hb.member.id === id);
  }

  /** The last heartbeat captured from `id`. */
  last(id: string): Captured | undefined {
    const all = this.from(id);
    return all[all.length - 1];
  }

  /** Sends raw bytes to the group; resolves once handed to the kernel. */
  send(datagram: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#socket!.send(datagram, this.port, GROUP, (err) => (err ? reject(err) : resolve())),
    );
  }

  /** Sends an unauthenticated heartbeat of `kind` and `seq` carrying `member`. */
  forge(kind: HeartbeatKind, seq: bigint, member: MemberDescriptor): Promise<void> {
    return this.send(encodeHeartbeat(kind, seq, encodeMember(member), undefined));
  }

  close(): void {
    this.#socket?.close();
    this.#socket = undefined;
  }
}
