/**
 * SWIM failure detection with Lifeguard's extensions (HashiCorp memberlist's design), as a state
 * machine over an injected clock and datagram sender, so that it runs without sockets in tests.
 *
 * Each round one member (randomized round robin) is pinged; no ack within the probe timeout →
 * `indirectChecks` others ping it for us (they answer ack, or nack when they heard nothing);
 * no ack by the end of the round → suspected. A suspicion is sent to every member (the suspect
 * included, so that it can refute it with a higher incarnation). It ends:
 * - refuted: an ALIVE (or ack) carrying an incarnation above the suspected one;
 * - rescued: its timer ran out, but the TCP verification (the check every removal needs) found
 *   the member answering: a false positive that plain SWIM would have removed;
 * - confirmed: timer out and TCP unanswered → `dead(id)`.
 * Lifeguard mode adds: the local-health multiplier (probe interval and timeout × score + 1; +1 per
 * missed nack or failed probe, +1 when this node had to refute a suspicion of itself, −1 per
 * successful probe), nacks, the buddy system (each ping to a suspect says so), and a suspicion
 * timeout that starts at max and shrinks to min with independent confirmations.
 */
import type { DetectorConfig } from '../config/channel-config.js';
import { type Probe, ProbeKind } from '../wire/probe.js';
import { expectedConfirmations, suspicionMinMs, suspicionTimeoutMs } from './suspicion.js';

/** A member the detector probes: its id and where its probe socket is. */
export interface DetectorPeer {
  readonly id: string;
  readonly host: string;
  readonly port: number;
}

/** What the detector needs from its host (the channel, or a test). */
export interface DetectorIO {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
  /** Sends a datagram to a member's probe socket. */
  send(to: DetectorPeer, probe: Probe): void;
  /** Answers a datagram (to the address it came from). */
  reply(to: unknown, probe: Probe): void;
  /** The TCP verification: true if the member answers within `timeoutMs`. */
  verify(id: string, timeoutMs: number): Promise<boolean>;
  /** Confirmed dead: remove it (the host then calls {@link Detector.remove}). */
  dead(id: string): void;
  /** In [0, 1); default Math.random. */
  random?(): number;
  /** A suspicion began (`reporter` raised it) or was confirmed by another member; for logs. */
  suspicion?(id: string, reporter: string, confirmations: number): void;
}

/** Counters (channel stats `detector`). */
export interface DetectorCounters {
  /** Direct pings sent by this node's probe rounds. */
  probes: number;
  /** PING_REQs sent (indirect probes asked of others). */
  indirectProbes: number;
  /** Probe rounds that ended without any ack. */
  failedProbes: number;
  /** Suspicions this node held (raised itself or learnt from others). */
  suspicions: number;
  /** Suspicions ended by an ALIVE or ack with a higher incarnation. */
  refutations: number;
  /** Suspicions whose timer ran out but whose member answered the TCP verification (kept). */
  verifyRescues: number;
  /** Suspicions of members that proved alive: refutations + verifyRescues. */
  falseSuspicions: number;
  /** Members removed: suspicion unrefuted and TCP unanswered. */
  confirmedRemovals: number;
  /** Suspicions of this node refuted by it (its incarnation raised). */
  selfRefutations: number;
  /** Acks for no open probe (answers after their round ended). */
  lateAcks: number;
  /** Nacks sent for indirect probes that got no ack. */
  nacksSent: number;
  /** Datagrams refused: malformed, unauthenticated, not for this node, about unknown members, over the limits. */
  refused: number;
  /** Current local-health score (0 = healthy; multiplier = score + 1). */
  awareness: number;
}

interface Suspicion {
  readonly incarnation: number;
  readonly start: number;
  readonly reporters: Set<string>;
  readonly k: number;
  readonly minMs: number;
  readonly maxMs: number;
  timer: unknown;
  expired: boolean;
  /** undefined while a verification runs; true once one answered; false when the last failed. */
  verified: boolean | undefined;
  verifying: boolean;
  /** Bound of each TCP verification (verifyTimeoutMs × the multiplier when the suspicion began). */
  readonly verifyMs: number;
}

interface Member {
  readonly peer: DetectorPeer;
  incarnation: number;
  suspicion: Suspicion | undefined;
}

interface Pending {
  readonly target: string;
  acked: boolean;
  nacks: number;
  /** An indirect probe run for another member: answer it here. */
  readonly relay?: { readonly to: DetectorPeer; readonly seq: number };
  timers: unknown[];
}

/** Open probes at most (own round + indirect probes run for others); more PING_REQs are refused. */
const MAX_PENDING = 256;

export class Detector {
  /** All counters at zero (stats of a channel whose detector is off). */
  static emptyCounters(): DetectorCounters {
    return {
      probes: 0,
      indirectProbes: 0,
      failedProbes: 0,
      suspicions: 0,
      refutations: 0,
      verifyRescues: 0,
      falseSuspicions: 0,
      confirmedRemovals: 0,
      selfRefutations: 0,
      nacksSent: 0,
      lateAcks: 0,
      refused: 0,
      awareness: 0,
    };
  }
  readonly counters: DetectorCounters = Detector.emptyCounters();
  readonly #members = new Map<string, Member>();
  readonly #pending = new Map<number, Pending>();
  #order: string[] = [];
  #next = 0;
  #seq: number;
  #incarnation = 0;
  #round: unknown;
  #running = false;
  readonly #lifeguard: boolean;
  readonly #random: () => number;

  constructor(
    readonly localId: string,
    private readonly config: DetectorConfig,
    private readonly io: DetectorIO,
  ) {
    this.#lifeguard = config.mode === 'lifeguard';
    this.#random = io.random ?? Math.random;
    this.#seq = Math.floor(this.#random() * 0xffffffff);
  }

  /** This node's incarnation (raised each time it refutes a suspicion of itself). */
  get incarnation(): number {
    return this.#incarnation;
  }

  /** The local-health multiplier (1 when healthy; always 1 in plain SWIM mode). */
  get multiplier(): number {
    return this.#lifeguard ? this.counters.awareness + 1 : 1;
  }

  start(): void {
    if (this.#running || this.config.mode === 'off') return;
    this.#running = true;
    this.#schedule(this.config.probeIntervalMs);
  }

  stop(): void {
    this.#running = false;
    this.io.clearTimer(this.#round);
    for (const p of this.#pending.values()) for (const t of p.timers) this.io.clearTimer(t);
    this.#pending.clear();
    for (const m of this.#members.values()) this.#endSuspicion(m);
  }

  /** A member entered the view: probe it from now on. */
  add(peer: DetectorPeer): void {
    if (peer.id === this.localId || this.#members.has(peer.id)) return;
    this.#members.set(peer.id, { peer, incarnation: 0, suspicion: undefined });
    // Inserted at a random place of the round still to come (memberlist does the same).
    const at = this.#next + Math.floor(this.#random() * (this.#order.length - this.#next + 1));
    this.#order.splice(at, 0, peer.id);
  }

  /** A member left the view: no more probes, its suspicion ends. */
  remove(id: string): void {
    const m = this.#members.get(id);
    if (m === undefined) return;
    this.#endSuspicion(m);
    this.#members.delete(id);
  }

  /** True while `id` is suspected. */
  suspected(id: string): boolean {
    return this.#members.get(id)?.suspicion !== undefined;
  }

  /** A datagram arrived (decoded and authenticated); `from` is its source, for replies. */
  receive(p: Probe, from: unknown): void {
    if (!this.#running) return;
    switch (p.kind) {
      case ProbeKind.PING: {
        this.#onPing(p, from);
        return;
      }
      case ProbeKind.ACK: {
        this.#onAck(p);
        return;
      }
      case ProbeKind.PING_REQ: {
        this.#onPingReq(p);
        return;
      }
      case ProbeKind.NACK: {
        const pending = this.#pending.get(p.seq);
        if (pending === undefined || pending.relay !== undefined) {
          this.#refuse();
          return;
        }
        pending.nacks++;
        return;
      }
      case ProbeKind.SUSPECT:
        if (p.subject === this.localId) {
          this.#refute(p.incarnation);
          return;
        }
        if (!this.#members.has(p.sender) || !this.#members.has(p.subject)) {
          this.#refuse();
          return;
        }
        {
          this.#suspect(p.subject, p.incarnation, p.sender);
          return;
        }
      case ProbeKind.ALIVE:
        if (p.sender !== p.subject || !this.#members.has(p.subject)) {
          this.#refuse();
          return;
        }
        {
          this.#alive(p.subject, p.incarnation);
          return;
        }
    }
  }

  /** Counts a datagram refused before it reached the detector (malformed, failed authentication). */
  refused(): void {
    this.counters.refused++;
  }

  // ---- probe rounds ---------------------------------------------------------------------------

  #schedule(ms: number): void {
    if (!this.#running) return;
    this.#round = this.io.setTimer(() => this.#probeRound(), ms);
  }

  #nextTarget(): Member | undefined {
    for (let tries = 0; tries < 2; tries++) {
      while (this.#next < this.#order.length) {
        const m = this.#members.get(this.#order[this.#next++]!);
        if (m !== undefined) return m;
      }
      // End of the round: a new random order of the members there are now.
      this.#order = shuffle([...this.#members.keys()], this.#random);
      this.#next = 0;
    }
    return undefined;
  }

  #probeRound(): void {
    const target = this.#nextTarget();
    const interval = this.config.probeIntervalMs * this.multiplier;
    if (target === undefined) {
      this.#schedule(interval);
      return;
    }
    const seq = this.#nextSeq();
    const pending: Pending = { target: target.peer.id, acked: false, nacks: 0, timers: [] };
    this.#pending.set(seq, pending);
    this.counters.probes++;
    const s = target.suspicion;
    this.io.send(target.peer, {
      kind: ProbeKind.PING,
      seq,
      // Lifeguard's buddy system: a suspect learns it is suspected from the ping itself.
      suspected: this.#lifeguard && s !== undefined,
      incarnation: this.#lifeguard && s !== undefined ? s.incarnation : 0,
      sender: this.localId,
      subject: target.peer.id,
    });
    let expectedNacks = 0;
    pending.timers.push(
      this.io.setTimer(() => {
        if (pending.acked) return;
        const helpers = this.#helpers(target.peer.id);
        for (const h of helpers) {
          this.counters.indirectProbes++;
          this.io.send(h.peer, {
            kind: ProbeKind.PING_REQ,
            seq,
            suspected: false,
            incarnation: 0,
            sender: this.localId,
            subject: target.peer.id,
          });
        }
        if (this.#lifeguard) expectedNacks = helpers.length;
      }, this.config.probeTimeoutMs * this.multiplier),
    );
    pending.timers.push(
      this.io.setTimer(() => {
        this.#pending.delete(seq);
        if (pending.acked) this.#health(-1);
        else {
          this.counters.failedProbes++;
          // Lifeguard: nacks that did not come say the problem may be here, not there.
          this.#health(expectedNacks > 0 ? Math.max(0, expectedNacks - pending.nacks) : 1);
          const m = this.#members.get(target.peer.id);
          if (m !== undefined) this.#suspect(m.peer.id, m.incarnation, this.localId);
        }
        this.#schedule(0);
      }, interval),
    );
  }

  /** Up to indirectChecks random members other than the target. */
  #helpers(target: string): Member[] {
    const others = [...this.#members.values()].filter((m) => m.peer.id !== target);
    return shuffle(others, this.#random).slice(0, this.config.indirectChecks);
  }

  #nextSeq(): number {
    this.#seq = (this.#seq + 1) >>> 0;
    return this.#seq;
  }

  #health(delta: number): void {
    if (!this.#lifeguard || delta === 0) return;
    this.counters.awareness = Math.max(0, Math.min(this.config.awarenessMax - 1, this.counters.awareness + delta));
  }

  #refuse(): void {
    this.counters.refused++;
  }

  // ---- answering --------------------------------------------------------------------------------

  #onPing(p: Probe, from: unknown): void {
    if (p.subject !== this.localId) {
      this.#refuse();
      return;
    }
    if (p.suspected) this.#refute(p.incarnation);
    this.io.reply(from, {
      kind: ProbeKind.ACK,
      seq: p.seq,
      suspected: false,
      incarnation: this.#incarnation,
      sender: this.localId,
      subject: this.localId,
    });
  }

  #onAck(p: Probe): void {
    const pending = this.#pending.get(p.seq);
    if (pending === undefined) {
      // Usually an answer after its round ended (loss, delay); a forged one needs the key.
      this.counters.lateAcks++;
      return;
    }
    if (pending.target !== p.subject) {
      this.#refuse();
      return;
    }
    const m = this.#members.get(p.subject);
    if (m !== undefined) this.#alive(p.subject, p.incarnation);
    if (pending.acked) return;
    pending.acked = true;
    if (pending.relay !== undefined) {
      this.#pending.delete(p.seq);
      for (const t of pending.timers) this.io.clearTimer(t);
      this.io.send(pending.relay.to, { ...p, seq: pending.relay.seq, sender: this.localId });
    }
  }

  /** An indirect probe for a member: only between members of this view (no reflection to arbitrary addresses). */
  #onPingReq(p: Probe): void {
    const requester = this.#members.get(p.sender);
    const target = this.#members.get(p.subject);
    if (requester === undefined || target === undefined || this.#pending.size >= MAX_PENDING) {
      this.#refuse();
      return;
    }
    const seq = this.#nextSeq();
    const pending: Pending = {
      target: target.peer.id,
      acked: false,
      nacks: 0,
      relay: { to: requester.peer, seq: p.seq },
      timers: [],
    };
    this.#pending.set(seq, pending);
    this.io.send(target.peer, {
      kind: ProbeKind.PING,
      seq,
      suspected: false,
      incarnation: 0,
      sender: this.localId,
      subject: target.peer.id,
    });
    pending.timers.push(
      this.io.setTimer(
        () => {
          this.#pending.delete(seq);
          if (pending.acked || !this.#lifeguard) return;
          this.counters.nacksSent++;
          this.io.send(requester.peer, {
            kind: ProbeKind.NACK,
            seq: p.seq,
            suspected: false,
            incarnation: 0,
            sender: this.localId,
            subject: target.peer.id,
          });
          // At 80 % of the probe timeout: the requester asked at its probe timeout and ends its round
          // at the probe interval (twice that by default), so a full timeout here would make the nack
          // arrive as the round ends, and count a healthy requester as unhealthy.
        },
        Math.floor(this.config.probeTimeoutMs * 0.8),
      ),
    );
  }

  // ---- suspicion ----------------------------------------------------------------------------------

  /** Someone suspects this node at `incarnation`: raise ours above it and tell everyone. */
  #refute(incarnation: number): void {
    if (incarnation < this.#incarnation) return; // an old suspicion, refuted already
    this.#incarnation = incarnation + 1;
    this.counters.selfRefutations++;
    // Lifeguard: being suspected suggests this node is slow to answer.
    this.#health(1);
    this.#broadcast(ProbeKind.ALIVE, this.localId, this.#incarnation);
  }

  #alive(id: string, incarnation: number): void {
    const m = this.#members.get(id);
    if (m === undefined || incarnation <= m.incarnation) return;
    m.incarnation = incarnation;
    const s = m.suspicion;
    if (s !== undefined && incarnation > s.incarnation) {
      this.counters.refutations++;
      this.counters.falseSuspicions++;
      this.#endSuspicion(m);
    }
  }

  #suspect(id: string, incarnation: number, reporter: string): void {
    const m = this.#members.get(id);
    if (m === undefined) return;
    const own = reporter === this.localId;
    const s = m.suspicion;
    if (s !== undefined) {
      // Another member cannot reach it either: a confirmation, whatever incarnation that member
      // knew (one that missed an ALIVE knows an older one). It only shortens the timer: the
      // removal still needs the TCP verification to fail.
      if (s.reporters.has(reporter)) return;
      s.reporters.add(reporter);
      this.io.suspicion?.(id, reporter, s.reporters.size - 1);
      if (own) this.#broadcast(ProbeKind.SUSPECT, id, s.incarnation);
      if (this.#lifeguard && !s.expired) this.#arm(m, s);
      return;
    }
    // A report naming an older incarnation than the one known here (its reporter missed an ack or
    // ALIVE) is still a fresh failure to reach the member: suspect it at the incarnation known
    // here, which the member then refutes by going above (the buddy ping tells it which). Dropping
    // it instead left this node to find out alone, with no confirmation: the long timer.
    incarnation = Math.max(incarnation, m.incarnation);
    const n = this.#members.size + 1;
    // A node in poor health (its own probes failing, nacks missing) gives suspects more time, and
    // its verifications too: its timeouts say as much about itself as about them (Lifeguard's
    // local health, applied here to the suspicion as well; 1 when healthy).
    const minMs = suspicionMinMs(this.config.suspicionMult, n, this.config.probeIntervalMs) * this.multiplier;
    const k = this.#lifeguard ? expectedConfirmations(this.config.suspicionMult, n) : 0;
    const suspicion: Suspicion = {
      incarnation,
      start: this.io.now(),
      reporters: new Set([reporter]),
      k,
      minMs,
      maxMs: k > 0 ? this.config.suspicionMaxMult * minMs : minMs,
      timer: undefined,
      expired: false,
      verified: undefined,
      verifying: false,
      verifyMs: this.config.verifyTimeoutMs * this.multiplier,
    };
    m.suspicion = suspicion;
    this.counters.suspicions++;
    this.io.suspicion?.(id, reporter, 0);
    if (own) this.#broadcast(ProbeKind.SUSPECT, id, incarnation);
    this.#arm(m, suspicion);
    this.#verify(m, suspicion);
  }

  /** (Re)sets the suspicion's timer for its confirmations so far. */
  #arm(m: Member, s: Suspicion): void {
    this.io.clearTimer(s.timer);
    const total = suspicionTimeoutMs(s.reporters.size - 1, s.k, s.minMs, s.maxMs);
    const left = Math.max(0, s.start + total - this.io.now());
    s.timer = this.io.setTimer(() => {
      s.expired = true;
      this.#decide(m, s);
    }, left);
  }

  /** TCP verifications while the suspicion lasts, each bounded; the last result decides at expiry. */
  #verify(m: Member, s: Suspicion): void {
    s.verifying = true;
    this.io.verify(m.peer.id, s.verifyMs).then(
      (alive) => this.#verified(m, s, alive),
      () => this.#verified(m, s, false),
    );
  }

  #verified(m: Member, s: Suspicion, alive: boolean): void {
    s.verifying = false;
    if (m.suspicion !== s) return;
    if (alive) s.verified = true;
    else if (!s.expired) {
      // Another try fits before the timer: a lost SYN or segment gets a second chance.
      const deadline = s.start + suspicionTimeoutMs(s.reporters.size - 1, s.k, s.minMs, s.maxMs);
      if (this.io.now() + s.verifyMs <= deadline) {
        this.#verify(m, s);
        return;
      }
      s.verified = false;
    } else s.verified = false;
    if (s.expired) this.#decide(m, s);
  }

  #decide(m: Member, s: Suspicion): void {
    if (m.suspicion !== s || s.verifying) return;
    if (s.verified === undefined) {
      this.#verify(m, s);
      return;
    }
    this.#endSuspicion(m);
    if (s.verified) {
      this.counters.verifyRescues++;
      this.counters.falseSuspicions++;
      return;
    }
    this.counters.confirmedRemovals++;
    this.io.dead(m.peer.id);
  }

  #endSuspicion(m: Member): void {
    const s = m.suspicion;
    if (s === undefined) return;
    this.io.clearTimer(s.timer);
    m.suspicion = undefined;
  }

  #broadcast(kind: ProbeKind, subject: string, incarnation: number): void {
    for (const m of this.#members.values())
      this.io.send(m.peer, { kind, seq: 0, suspected: false, incarnation, sender: this.localId, subject });
  }
}

function shuffle<T>(xs: T[], random: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}
