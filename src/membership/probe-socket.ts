/**
 * The failure detector's UDP socket: bound on the receiver's address and port number (UDP next to
 * the TCP receiver, as memberlist does), so peers know where to probe from a member's descriptor.
 * Every datagram is authenticated like a heartbeat (cluster key, timestamp window) and fixed in
 * size; anything else is refused and counted before the detector sees it.
 *
 * Why UDP and not the TCP connections: a lost segment on a TCP connection is retransmitted after
 * at least 200 ms (Linux's minimum RTO; 1 s for a lost SYN), and everything queued behind it waits,
 * so a probe over TCP under 10 % loss regularly misses a 50 ms timeout, and a silent peer only
 * shows when the connection times out. A lost datagram is just a lost probe: the next one, or the
 * indirect probes over other members' paths, go at once. TCP stays the last word before a removal
 * (the verification).
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { Logger } from '../core/logger.js';
import type { ClusterKeys } from '../wire/auth.js';
import { decodeProbe, encodeProbe, PROBE_BYTES, type Probe } from '../wire/probe.js';
import type { Detector, DetectorPeer } from './detector.js';

/** Largest datagram read at all (a probe is 72 bytes with a key): anything bigger is refused unread. */
const MAX_DATAGRAM = PROBE_BYTES + 64;

export interface ProbeSocketOptions {
  readonly host: string;
  readonly port: number;
  readonly keys: ClusterKeys | undefined;
  readonly replayWindowMs: number;
  readonly logger: Logger;
}

export class ProbeSocket {
  #socket: Socket | undefined;
  #detector: Detector | undefined;
  #refusedLogged = 0;
  /** Datagrams refused before decoding (size, magic, version, MAC, timestamp). */
  refused = 0;

  constructor(private readonly options: ProbeSocketOptions) {}

  /** Binds; false (logged) when the port is taken: peers' probes then fail and TCP verification keeps this node. */
  async bind(detector: Detector): Promise<boolean> {
    this.#detector = detector;
    const o = this.options;
    const socket = createSocket({ type: isIP(o.host) === 6 ? 'udp6' : 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind({ port: o.port, address: o.host, exclusive: true }, () => {
          socket.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      socket.close();
      o.logger.warn(
        { err, address: `${o.host}:${o.port}` },
        'failure detector: UDP port of the receiver taken; this node is not probed (peers fall back on TCP verification)',
      );
      return false;
    }
    socket.on('error', (err) => o.logger.warn({ err }, 'failure detector socket error'));
    socket.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo));
    this.#socket = socket;
    return true;
  }

  send(to: DetectorPeer, probe: Probe): void {
    this.#socket?.send(encodeProbe(probe, this.options.keys), to.port, to.host);
  }

  reply(to: unknown, probe: Probe): void {
    const r = to as RemoteInfo;
    this.#socket?.send(encodeProbe(probe, this.options.keys), r.port, r.address);
  }

  close(): void {
    this.#socket?.close();
    this.#socket = undefined;
  }

  #onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    let probe: Probe;
    try {
      if (msg.length > MAX_DATAGRAM) throw new Error(`datagram of ${msg.length} bytes`);
      probe = decodeProbe(msg, this.options.keys, this.options.replayWindowMs);
    } catch (err) {
      this.refused++;
      this.#detector?.refused();
      if (this.#refusedLogged++ % 100 === 0)
        this.options.logger.warn(
          { from: `${rinfo.address}:${rinfo.port}`, reason: (err as Error).message, refused: this.refused },
          'failure detector datagram refused (logged every 100th)',
        );
      return;
    }
    this.#detector?.receive(probe, rinfo);
  }
}
