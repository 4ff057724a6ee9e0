/**
 * Membership: who else is in the cluster. A MembershipService discovers members and reports them
 * added and removed (with why); the channel passes those events up its interceptor stack, where
 * the failure detector may verify a removal before the application hears of it.
 */
import type { ProtocolVersionError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { ClusterKeys } from '../wire/auth.js';
import type { MemberDescriptor } from '../wire/member.js';

/** Why a member is gone. */
export type RemoveReason =
  /** Its heartbeats (or ping answers) stopped for longer than dropTime. */
  | 'timeout'
  /** It announced a graceful stop. */
  | 'leave'
  /** The failure detector found it unreachable (connection refused or reset, no answer). */
  | 'unreachable'
  /** A new process answers at its address: it restarted (the new process is a new member). */
  | 'restart';

export interface MembershipEvents {
  added(member: MemberDescriptor): void;
  removed(member: MemberDescriptor, reason: RemoveReason): void;
}

/** What a membership service gets from the channel when it starts. */
export interface MembershipContext {
  /** The local member's id, to ignore our own heartbeats and our own address in a static list. */
  readonly localId: string;
  /** The encoded local descriptor (re-read each heartbeat: the payload may change). */
  localDescriptor(): Buffer;
  readonly local: () => MemberDescriptor;
  readonly keys: ClusterKeys | undefined;
  readonly replayWindowMs: number;
  /** With a key: whether records are encrypted (heartbeats carry it; a mismatch is refused). */
  readonly encrypt: boolean;
  readonly domain: string;
  readonly events: MembershipEvents;
  readonly logger: Logger;
  /** Pings host:port over TCP (hello + PING); resolves with who answered. */
  ping(host: string, port: number, timeoutMs: number): Promise<MemberDescriptor>;
  /**
   * Probes `member` over a fresh TCP connection (hello + PING), as the failure detector does:
   * true if that member (same id) answers at its address. A closed receiver refuses at once.
   */
  verify(member: MemberDescriptor): Promise<boolean>;
  /** Counts a heartbeat (or membership claim) refused, with why. */
  countRefused(reason: string, from: string): void;
  /** Counts (transport.refusedProtocolVersion) and logs a verified heartbeat from a member of an incompatible protocol version. */
  versionRefused?(err: ProtocolVersionError, from: string): void;
}

/** Refused membership claims, by kind (channel stats, `membership`). */
export interface MembershipCounters {
  /** Heartbeats whose sequence was not above the member's last one (replayed or reordered). */
  replays: number;
  /** Heartbeats whose sequence was implausibly far ahead: refused, the member's floor kept. */
  sequenceJumps: number;
  /** Heartbeats or hellos giving a known member id another address, start time, name or domain. */
  conflictingDescriptors: number;
  /** LEAVING heartbeats (or LEAVE frames) of members that still answered over TCP: ignored. */
  spoofedLeaving: number;
  /** New member ids at the address of a member that still answered there: refused. */
  spoofedRestarts: number;
  /** TCP verifications run for leave and restart claims. */
  verifications: number;
}

export function newMembershipCounters(): MembershipCounters {
  return {
    replays: 0,
    sequenceJumps: 0,
    conflictingDescriptors: 0,
    spoofedLeaving: 0,
    spoofedRestarts: 0,
    verifications: 0,
  };
}

/** A pluggable membership service (multicast heartbeats, static list, ...). */
export interface MembershipService {
  readonly kind: string;
  start(ctx: MembershipContext): Promise<void>;
  /** Graceful stop: tells the others this member is leaving. */
  stop(): Promise<void>;
  /** Current members, local member excluded. */
  members(): MemberDescriptor[];
  /**
   * Resolves once the first round of discovery is over (every peer that is up has been heard):
   * what a starting node waits for before it decides whether anyone holds sessions for it.
   */
  settled(): Promise<void>;
  /** The failure detector confirmed `id` dead: drop it without another event. */
  forget(id: string): void;
  /**
   * `id` told us over TCP that it is leaving (verified like a LEAVING heartbeat before it is
   * removed); a returned promise settles once that is done.
   */
  left(id: string): void | Promise<void>;
  /** A member completed an authenticated hello on our receiver: it is alive now. */
  heard(member: MemberDescriptor): void;
  /** The local descriptor changed (e.g. payload): advertise it now. */
  localChanged(): void;
  /** Refused claims (the channel shows them in its stats). */
  stats?(): MembershipCounters;
}

interface Entry {
  member: MemberDescriptor;
  lastSeen: number;
}

/** What a MemberTable needs besides its events. */
export interface MemberTableOptions {
  /** How long a removed id is ignored (a late heartbeat does not resurrect it). */
  readonly graveMs: number;
  /** After a leave or restart claim proved false, further ones for that member are refused unchecked this long. */
  readonly refutedMs: number;
  readonly verify: (member: MemberDescriptor) => Promise<boolean>;
  readonly counters: MembershipCounters;
  readonly refused: (reason: string, from: string) => void;
}

/**
 * Members by id with last-heard times: the bookkeeping both services share. Claims that would
 * remove a live member are checked over TCP first (one check per member at a time): a LEAVING
 * heartbeat, or a new id at a member's address (a restart only if the old member no longer
 * answers there). A known id keeps its address, start time, name and domain; only its payload
 * may change.
 */
export class MemberTable {
  readonly #byId = new Map<string, Entry>();
  /** Ids recently removed, so a late heartbeat does not resurrect a member that left. */
  readonly #gone = new Map<string, number>();
  /** Member ids (leave) and addresses (restart) being verified. */
  readonly #checks = new Map<string, Promise<void>>();
  /** When a claim about an id or address was last proved false. */
  readonly #refuted = new Map<string, number>();
  #stopped = false;

  constructor(
    private readonly events: MembershipEvents,
    private readonly options: MemberTableOptions,
  ) {}

  get size(): number {
    return this.#byId.size;
  }

  list(): MemberDescriptor[] {
    return Array.from(this.#byId.values(), (e) => e.member);
  }

  get(id: string): MemberDescriptor | undefined {
    return this.#byId.get(id)?.member;
  }

  /**
   * Records that `member` is alive now; adds it if new (a new id at a member's address once the
   * old one is verified gone). Returns false when the claim is refused (and counted).
   */
  seen(member: MemberDescriptor, now: number): boolean {
    if (this.conflicts(member)) return false;
    const entry = this.#byId.get(member.id);
    if (entry !== undefined) {
      entry.lastSeen = now;
      if (!bytesEqual(entry.member.payload, member.payload)) entry.member = member;
      return true;
    }
    if (this.#inGrave(member.id, now)) return true;
    const holder = this.#at(member.host, member.port);
    if (holder === undefined) {
      this.#add(member, now);
      return true;
    }
    const address = addressOf(member);
    if (this.#checks.has(address)) return true; // the check under way decides; a later heartbeat adds it
    if (this.#wasRefuted(address, now)) {
      this.options.counters.spoofedRestarts++;
      this.options.refused('new member id at the address of a member that still answers there', address);
      return false;
    }
    this.#check(address, holder.member, (alive, t) => {
      if (alive) {
        this.options.counters.spoofedRestarts++;
        this.options.refused('new member id at the address of a member that still answers there', address);
        return;
      }
      if (this.#byId.get(holder.member.id) === holder) this.remove(holder.member.id, 'restart', t);
      if (
        !this.#byId.has(member.id) &&
        !this.#inGrave(member.id, t) &&
        this.#at(member.host, member.port) === undefined
      )
        this.#add(member, t);
    });
    return true;
  }

  /** True (and counted) when `member` gives a known id another address, start time, name or domain. */
  conflicts(member: MemberDescriptor): boolean {
    const entry = this.#byId.get(member.id);
    if (entry === undefined || sameIdentity(entry.member, member)) return false;
    this.options.counters.conflictingDescriptors++;
    this.options.refused('descriptor conflicts with the known member of that id', addressOf(member));
    return true;
  }

  /** A LEAVING heartbeat or LEAVE frame from `id`: removed if it no longer answers over TCP, else refused. */
  leaving(id: string, now: number): Promise<void> | undefined {
    const entry = this.#byId.get(id);
    if (entry === undefined) return;
    const checking = this.#checks.get(id);
    if (checking !== undefined) return checking;
    if (this.#wasRefuted(id, now)) {
      this.options.counters.spoofedLeaving++;
      this.options.refused('LEAVING heartbeat of a member that still answers', addressOf(entry.member));
      return;
    }
    return this.#check(id, entry.member, (alive, t) => {
      if (alive) {
        this.options.counters.spoofedLeaving++;
        this.options.refused('LEAVING heartbeat of a member that still answers', addressOf(entry.member));
      } else if (this.#byId.get(id) === entry) this.remove(id, 'leave', t);
    });
  }

  /** Removes `id` and reports it; `silent` skips the event (the failure detector already did). */
  remove(id: string, reason: RemoveReason, now: number, silent = false): void {
    const entry = this.#byId.get(id);
    if (entry === undefined) return;
    this.#byId.delete(id);
    this.#gone.set(id, now);
    if (!silent) this.events.removed(entry.member, reason);
  }

  /** Reports every member not heard from within dropTimeMs as timed out. */
  expire(now: number, dropTimeMs: number): void {
    for (const [id, e] of this.#byId) if (now - e.lastSeen > dropTimeMs) this.remove(id, 'timeout', now);
    for (const [id, t] of this.#gone) if (now - t >= this.options.graveMs) this.#gone.delete(id);
    for (const [key, t] of this.#refuted) if (now - t >= this.options.refutedMs) this.#refuted.delete(key);
  }

  /** Forgets everything; checks still under way then change nothing. */
  clear(): void {
    this.#stopped = true;
    this.#byId.clear();
  }

  #add(member: MemberDescriptor, now: number): void {
    this.#byId.set(member.id, { member, lastSeen: now });
    this.events.added(member);
  }

  #at(host: string, port: number): Entry | undefined {
    for (const e of this.#byId.values()) if (e.member.host === host && e.member.port === port) return e;
    return undefined;
  }

  #inGrave(id: string, now: number): boolean {
    const grave = this.#gone.get(id);
    return grave !== undefined && now - grave < this.options.graveMs;
  }

  #wasRefuted(key: string, now: number): boolean {
    const t = this.#refuted.get(key);
    return t !== undefined && now - t < this.options.refutedMs;
  }

  /** Verifies `member` over TCP under `key` (one check per key at a time), then calls `then`. */
  #check(key: string, member: MemberDescriptor, then: (alive: boolean, now: number) => void): Promise<void> {
    this.options.counters.verifications++;
    const done = this.options.verify(member).then(
      (alive) => this.#checked(key, alive, then),
      () => this.#checked(key, false, then),
    );
    this.#checks.set(key, done);
    return done;
  }

  #checked(key: string, alive: boolean, then: (alive: boolean, now: number) => void): void {
    this.#checks.delete(key);
    if (this.#stopped) return;
    const now = Date.now();
    if (alive) this.#refuted.set(key, now);
    then(alive, now);
  }
}

function addressOf(m: MemberDescriptor): string {
  return `${m.host}:${m.port}`;
}

/** Everything but the payload: what a member id stands for during its whole life. */
function sameIdentity(a: MemberDescriptor, b: MemberDescriptor): boolean {
  return (
    a.host === b.host &&
    a.port === b.port &&
    a.startTime === b.startTime &&
    a.name === b.name &&
    a.domain === b.domain &&
    a.protocolVersion === b.protocolVersion
  );
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}
