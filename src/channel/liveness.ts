/**
 * Liveness checks of the channel: TCP pings of static/DNS membership, the TCP verification every
 * removal of a silent member needs, and the SWIM/Lifeguard failure detector (membership/detector.ts)
 * with its UDP socket. A member the detector confirms dead (suspicion unrefuted, TCP unanswered) is
 * removed through the top of the stack as `unreachable`, as the failure-detector interceptor does.
 */
import type { ChannelConfig } from '../config/channel-config.js';
import type { ClusterError, ProtocolVersionError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { Detector } from '../membership/detector.js';
import { ProbeSocket } from '../membership/probe-socket.js';
import { PeerConnection } from '../transport/peer-connection.js';
import type { TransportSettings } from '../transport/settings.js';
import type { TransportStats } from '../transport/stats.js';
import type { ClusterKeys } from '../wire/auth.js';
import type { MemberDescriptor } from '../wire/member.js';
import type { Member } from './types.js';

export interface LivenessDeps {
  readonly config: ChannelConfig;
  readonly logger: Logger;
  readonly stats: TransportStats;
  /** The transport settings (replaced once the keys are resolved). */
  settings(): TransportSettings;
  /** The open data connection to a member, if any (a ping there needs no handshake). */
  connection(id: string): PeerConnection | undefined;
  /** A member in the view, by id. */
  member(id: string): Member | undefined;
  /** The detector confirmed `m` dead. */
  dead(m: Member): void;
}

export class Liveness {
  readonly #probes = new Map<string, PeerConnection>();
  /** When a protocol-version refusal was last logged, per peer address. */
  readonly #versionLogged = new Map<string, number>();
  #detector: Detector | undefined;
  #socket: ProbeSocket | undefined;
  #udp = false;

  constructor(private readonly deps: LivenessDeps) {}

  /** Starts the failure detector (unless `detector.mode` is "off") on the receiver's address and port. */
  async start(localId: string, host: string, port: number, keys: ClusterKeys | undefined): Promise<void> {
    const c = this.deps.config;
    if (c.detector.mode === 'off') return;
    const socket = new ProbeSocket({
      host,
      port,
      keys,
      replayWindowMs: c.replayWindowMs,
      logger: this.deps.logger,
    });
    const detector = new Detector(localId, c.detector, {
      now: Date.now,
      setTimer: (fn, ms) => {
        const t = setTimeout(fn, ms);
        t.unref();
        return t;
      },
      clearTimer: (t) => clearTimeout(t as NodeJS.Timeout),
      send: (to, p) => socket.send(to, p),
      reply: (to, p) => socket.reply(to, p),
      verify: (id, timeoutMs) => this.#verifyId(id, timeoutMs),
      suspicion: (id, reporter, confirmations) =>
        this.deps.logger.info(
          {
            member: this.deps.member(id)?.name,
            id,
            reporter: reporter === localId ? 'self' : (this.deps.member(reporter)?.name ?? reporter),
            confirmations,
            health: detector.counters.awareness,
          },
          confirmations === 0 ? 'failure detector: member suspected' : 'failure detector: suspicion confirmed',
        ),
      dead: (id) => {
        const m = this.deps.member(id);
        if (m === undefined) return;
        this.deps.logger.info(
          { member: m.name, id },
          'failure detector: suspicion unrefuted and no answer over TCP: member removed',
        );
        this.deps.dead(m);
      },
    });
    this.#udp = await socket.bind(detector);
    this.#socket = socket;
    this.#detector = detector;
    detector.start();
  }

  added(m: Member): void {
    this.#detector?.add({ id: m.id, host: m.host, port: m.port });
  }

  removed(id: string): void {
    this.#detector?.remove(id);
  }

  stop(reason: ClusterError): void {
    this.#detector?.stop();
    this.#socket?.close();
    for (const c of this.#probes.values()) c.close(reason);
    this.#probes.clear();
  }

  stats(): import('./api.js').ChannelStats['detector'] {
    const c = this.#detector?.counters;
    return {
      mode: this.#detector === undefined ? 'off' : this.deps.config.detector.mode,
      udp: this.#udp,
      ...(c ?? Detector.emptyCounters()),
    };
  }

  /** Pings an address over a persistent control connection (static membership). */
  ping(host: string, port: number, timeoutMs: number): Promise<MemberDescriptor> {
    const key = `${host}:${port}`;
    let conn = this.#probes.get(key);
    if (conn === undefined || conn.state === 'closed') {
      conn = new PeerConnection(
        host,
        port,
        { ...this.deps.settings(), maxRetryAttempts: 0, connectTimeoutMs: timeoutMs },
        () => {},
      );
      this.#probes.set(key, conn);
    }
    return conn.ping(timeoutMs);
  }

  /** Failure-detector verification: a fresh connection, hello and PING. True if the same member answers. */
  async verify(m: Member, timeoutMs: number): Promise<boolean> {
    const conn = new PeerConnection(
      m.host,
      m.port,
      { ...this.deps.settings(), maxRetryAttempts: 0, connectTimeoutMs: timeoutMs },
      () => {},
      m.id,
    );
    try {
      const answered = await conn.ping(timeoutMs);
      return answered.id === m.id;
    } catch {
      return false;
    } finally {
      conn.close();
    }
  }

  /**
   * The detector's verification of a suspect: a fresh connection (as {@link verify}) and, at the
   * same time, a PING on the open data connection (no SYN to lose under packet loss); alive if
   * either answers within the bound.
   */
  #verifyId(id: string, timeoutMs: number): Promise<boolean> {
    const m = this.deps.member(id);
    if (m === undefined) return Promise.resolve(true); // gone already: nothing to remove
    const open = this.deps.connection(id);
    const checks = [this.verify(m, timeoutMs)];
    if (open !== undefined && open.state !== 'closed')
      checks.push(
        withTimeout(open.ping(timeoutMs), timeoutMs).then(
          (d) => d?.id === id,
          () => false,
        ),
      );
    return new Promise((resolve) => {
      let left = checks.length;
      for (const c of checks)
        c.then((alive) => {
          if (alive) resolve(true);
          else if (--left === 0) resolve(false);
        });
    });
  }

  /** One warning per peer address a minute for members refused for their protocol version (each is counted). */
  versionRefused(err: ProtocolVersionError, peer: string, via: 'hello' | 'hello answer' | 'heartbeat'): void {
    const host = peer.slice(0, peer.lastIndexOf(':'));
    const now = Date.now();
    const last = this.#versionLogged.get(host);
    if (last !== undefined && now - last < 60_000) return;
    if (this.#versionLogged.size >= 1000) this.#versionLogged.clear();
    this.#versionLogged.set(host, now);
    this.deps.logger.warn(
      {
        peer,
        via,
        memberId: err.peerId,
        peerVersions: `${err.peerMin}-${err.peerCurrent}`,
        localVersions: `${err.localMin}-${err.localCurrent}`,
        refused: this.deps.stats.refusedProtocolVersion,
      },
      `refused a member of an incompatible protocol version: ${err.message} (logged once a minute per address; counted in transport.refusedProtocolVersion)`,
    );
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => resolve(undefined), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (err) => {
        clearTimeout(t);
        reject(err);
      },
    );
  });
}
