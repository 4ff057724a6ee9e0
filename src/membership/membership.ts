/**
 * Membership: who else is in the cluster. A MembershipService discovers members and reports them
 * added and removed (with why); the channel passes those events up its interceptor stack, where
 * the failure detector may verify a removal before the application hears of it.
 */
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
  /** Counts a heartbeat refused for authentication or format. */
  countRefused(reason: string, from: string): void;
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
  /** `id` told us over TCP that it is leaving. */
  left(id: string): void;
  /** A member completed an authenticated hello on our receiver: it is alive now. */
  heard(member: MemberDescriptor): void;
  /** The local descriptor changed (e.g. payload): advertise it now. */
  localChanged(): void;
}

interface Entry {
  member: MemberDescriptor;
  lastSeen: number;
}

/**
 * Members by id with last-heard times: the bookkeeping both services share. A member whose id
 * changes at the same address is a restart: the old one is removed before the new one is added.
 */
export class MemberTable {
  readonly #byId = new Map<string, Entry>();
  /** Ids recently removed, so a late heartbeat does not resurrect a member that left. */
  readonly #gone = new Map<string, number>();

  constructor(
    private readonly events: MembershipEvents,
    private readonly graveMs: number,
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

  /** Records that `member` is alive now; adds it (and removes a restarted predecessor) if new. */
  seen(member: MemberDescriptor, now: number): void {
    const entry = this.#byId.get(member.id);
    if (entry !== undefined) {
      entry.lastSeen = now;
      if (entry.member.startTime !== member.startTime || !bytesEqual(entry.member.payload, member.payload)) {
        entry.member = member;
      }
      return;
    }
    const grave = this.#gone.get(member.id);
    if (grave !== undefined && now - grave < this.graveMs) return;
    for (const other of this.#byId.values()) {
      if (other.member.host === member.host && other.member.port === member.port) {
        this.remove(other.member.id, 'restart', now);
        break;
      }
    }
    this.#byId.set(member.id, { member, lastSeen: now });
    this.events.added(member);
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
    for (const [id, t] of this.#gone) if (now - t >= this.graveMs) this.#gone.delete(id);
  }

  clear(): void {
    this.#byId.clear();
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}
