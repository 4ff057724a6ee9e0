/**
 * Static membership: a list of peer addresses, each pinged over TCP every pingIntervalMs.
 * A peer that answers is a member (identified by its hello); one that has not answered for
 * dropTimeMs is reported as timed out. The list may include this node (it is recognised by id).
 * DNS membership (dns.ts) replaces the list as the name's records change ({@link StaticMembership.setTargets}).
 */
import { parseHostPort } from '../core/net.js';
import type { MemberDescriptor } from '../wire/member.js';
import {
  type MembershipContext,
  type MembershipCounters,
  type MembershipService,
  MemberTable,
  newMembershipCounters,
} from './membership.js';

/** A peer's receiver address. */
export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

interface Target extends PeerAddress {
  inFlight: boolean;
  self: boolean;
  tried: boolean;
  /** In the current list. An address dropped from it stays a target while a member answers there. */
  listed: boolean;
  /** Taken out of the list of targets: a ping still under way then changes nothing. */
  retired: boolean;
  /** When it last answered (a ping, or the member connected to us); 0 = never. */
  answeredAt: number;
  /** The member that answered there last. */
  memberId: string | undefined;
}

export interface StaticMembershipConfig {
  readonly members: readonly string[];
  readonly pingIntervalMs: number;
  readonly dropTimeMs: number;
  /**
   * A member that connects from an address not in the list becomes a target anyway (within the
   * limit of {@link StaticMembership.setTargets}): DNS membership, whose list may lag (a starting
   * Kubernetes pod is listed only once it is ready). Static lists are exact: default false.
   */
  readonly acceptUnlisted?: boolean;
}

export class StaticMembership implements MembershipService {
  readonly kind = 'static';
  #ctx: MembershipContext | undefined;
  #table: MemberTable | undefined;
  #timer: NodeJS.Timeout | undefined;
  #targets: Target[];
  #settled: (() => void)[] = [];
  readonly #counters = newMembershipCounters();
  /** The most targets kept (setTargets' limit). */
  #limit = Number.POSITIVE_INFINITY;
  /** Members that connected from unlisted addresses refused because the limit was reached. */
  #refusedUnlisted = 0;

  constructor(private readonly config: StaticMembershipConfig) {
    this.#targets = config.members.map((text) => newTarget(parseHostPort(text)!));
  }

  /**
   * Replaces the address list (DNS membership, on each resolution). New addresses are pinged at
   * once; at most `limit` targets are kept, known ones first, and the new addresses
   * beyond it are refused (returned as a count). An address no longer listed is still pinged while
   * a member answers there: a list that lags or blips never removes a member, only silence does
   * (dropTimeMs, then the failure detector's verification).
   */
  setTargets(list: readonly PeerAddress[], limit = Number.POSITIVE_INFINITY): number {
    this.#limit = limit;
    const known = new Map(this.#targets.map((t) => [addressKey(t), t]));
    for (const t of this.#targets) t.listed = false;
    const fresh: PeerAddress[] = [];
    const given = new Set<string>();
    for (const a of list) {
      const key = addressKey(a);
      if (given.has(key)) continue;
      given.add(key);
      const t = known.get(key);
      if (t === undefined) fresh.push(a);
      else t.listed = true;
    }
    const now = Date.now();
    const next = this.#targets.filter((t) => this.#keep(t, now));
    let refused = 0;
    const local = this.#ctx?.local();
    for (const a of fresh) {
      if (next.length >= limit) {
        refused++;
        continue;
      }
      const t = newTarget(a);
      if (local !== undefined && a.port === local.port && a.host === local.host) t.self = true;
      next.push(t);
    }
    this.#replaceTargets(next);
    // New addresses are pinged now, not at the next round: a node joining is seen at once.
    if (this.#timer !== undefined && next.length > 0 && fresh.length > refused) this.#round();
    return refused;
  }

  /**
   * Targets in the list; targets not in it, kept because a member answers there (it left the list,
   * or connected before the list named it); members refused at an unlisted address for the limit.
   */
  targetCounts(): { listed: number; unlisted: number; refusedUnlisted: number } {
    let listed = 0;
    for (const t of this.#targets) if (t.listed) listed++;
    return { listed, unlisted: this.#targets.length - listed, refusedUnlisted: this.#refusedUnlisted };
  }

  /** A listed target stays; an unlisted one while its member is in the table or it answered within dropTimeMs. */
  #keep(t: Target, now: number): boolean {
    if (t.listed) return true;
    if (t.self) return false;
    if (t.memberId !== undefined && this.#table?.get(t.memberId) !== undefined) return true;
    return t.answeredAt > 0 && now - t.answeredAt <= this.config.dropTimeMs;
  }

  #replaceTargets(next: Target[]): void {
    const kept = new Set(next);
    for (const t of this.#targets) if (!kept.has(t)) t.retired = true;
    this.#targets = next;
    this.#resolveSettled();
  }

  async start(ctx: MembershipContext): Promise<void> {
    this.#ctx = ctx;
    this.#table = new MemberTable(ctx.events, {
      graveMs: this.config.dropTimeMs,
      refutedMs: this.config.dropTimeMs,
      verify: (m) => ctx.verify(m),
      counters: this.#counters,
      refused: (reason, from) => ctx.countRefused(reason, from),
    });
    const local = ctx.local();
    for (const t of this.#targets) if (t.port === local.port && t.host === local.host) t.self = true;
    this.#round();
    this.#timer = setInterval(() => this.#round(), this.config.pingIntervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const w of this.#settled.splice(0)) w();
    this.#table?.clear();
  }

  /** Resolves once every listed peer answered or failed one ping. */
  settled(): Promise<void> {
    if (this.#allTried()) return Promise.resolve();
    return new Promise((resolve) => this.#settled.push(resolve));
  }

  #allTried(): boolean {
    return this.#targets.every((t) => t.self || t.tried);
  }

  #markTried(t: { tried: boolean }): void {
    t.tried = true;
    this.#resolveSettled();
  }

  #resolveSettled(): void {
    if (this.#settled.length > 0 && this.#allTried()) {
      const waiting = this.#settled;
      this.#settled = [];
      for (const w of waiting) w();
    }
  }

  stats(): MembershipCounters {
    return { ...this.#counters };
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

  /**
   * A listed peer connected to us: count it as answering now, so both sides see each other at
   * the same moment (a session created here right after is sent to it). With acceptUnlisted, an
   * unlisted one too (it is then pinged while it answers).
   */
  heard(member: MemberDescriptor): void {
    const ctx = this.#ctx;
    if (ctx === undefined || this.#timer === undefined || member.id === ctx.localId || member.domain !== ctx.domain)
      return;
    let t = this.#targets.find((x) => x.port === member.port && x.host === member.host);
    if (t === undefined) {
      if (!this.config.acceptUnlisted) return;
      if (this.#targets.length >= this.#limit) {
        this.#refusedUnlisted++;
        return;
      }
      t = { ...newTarget(member), listed: false };
      this.#targets.push(t);
    }
    const now = Date.now();
    if (this.#table!.seen(member, now)) {
      t.answeredAt = now;
      t.memberId = member.id;
    }
    this.#markTried(t);
  }

  localChanged(): void {
    // Peers read the descriptor from each hello; pings re-handshake only on reconnect, so
    // payload changes reach them through the channel (it re-announces over data connections).
  }

  #round(): void {
    const ctx = this.#ctx!;
    const table = this.#table!;
    const now = Date.now();
    table.expire(now, this.config.dropTimeMs);
    if (this.#targets.some((t) => !t.listed)) this.#replaceTargets(this.#targets.filter((t) => this.#keep(t, now)));
    for (const t of this.#targets) {
      if (t.self || t.inFlight) continue;
      t.inFlight = true;
      ctx.ping(t.host, t.port, Math.min(this.config.dropTimeMs, Math.max(this.config.pingIntervalMs * 2, 200))).then(
        (member) => {
          t.inFlight = false;
          if (this.#timer === undefined || t.retired) return;
          if (member.id === ctx.localId)
            t.self = true; // the list names this node under another spelling
          else if (member.domain === ctx.domain) {
            const at = Date.now();
            if (table.seen(member, at)) {
              t.answeredAt = at;
              t.memberId = member.id;
            }
          }
          this.#markTried(t);
        },
        () => {
          t.inFlight = false;
          this.#markTried(t);
        },
      );
    }
  }
}

function newTarget(a: PeerAddress): Target {
  return {
    host: a.host,
    port: a.port,
    inFlight: false,
    self: false,
    tried: false,
    listed: true,
    retired: false,
    answeredAt: 0,
    memberId: undefined,
  };
}

/** "host:port", IPv6 in brackets. */
export function addressKey(a: PeerAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
