/**
 * Static membership: a fixed list of peer addresses, each pinged over TCP every pingIntervalMs.
 * A peer that answers is a member (identified by its hello); one that has not answered for
 * dropTimeMs is reported as timed out. The list may include this node (it is recognised by id).
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

export interface StaticMembershipConfig {
  readonly members: readonly string[];
  readonly pingIntervalMs: number;
  readonly dropTimeMs: number;
}

export class StaticMembership implements MembershipService {
  readonly kind = 'static';
  #ctx: MembershipContext | undefined;
  #table: MemberTable | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #targets: { host: string; port: number; inFlight: boolean; self: boolean; tried: boolean }[];
  #settled: (() => void)[] = [];
  readonly #counters = newMembershipCounters();

  constructor(private readonly config: StaticMembershipConfig) {
    this.#targets = config.members.map((text) => ({
      ...parseHostPort(text)!,
      inFlight: false,
      self: false,
      tried: false,
    }));
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
   * the same moment (a session created here right after is sent to it).
   */
  heard(member: MemberDescriptor): void {
    const ctx = this.#ctx;
    if (ctx === undefined || this.#timer === undefined || member.id === ctx.localId || member.domain !== ctx.domain)
      return;
    const t = this.#targets.find((x) => x.port === member.port && x.host === member.host);
    if (t === undefined) return;
    this.#table!.seen(member, Date.now());
    this.#markTried(t);
  }

  localChanged(): void {
    // Peers read the descriptor from each hello; pings re-handshake only on reconnect, so
    // payload changes reach them through the channel (it re-announces over data connections).
  }

  #round(): void {
    const ctx = this.#ctx!;
    const table = this.#table!;
    table.expire(Date.now(), this.config.dropTimeMs);
    for (const t of this.#targets) {
      if (t.self || t.inFlight) continue;
      t.inFlight = true;
      ctx.ping(t.host, t.port, Math.min(this.config.dropTimeMs, Math.max(this.config.pingIntervalMs * 2, 200))).then(
        (member) => {
          t.inFlight = false;
          if (this.#timer === undefined) return;
          if (member.id === ctx.localId)
            t.self = true; // the list names this node under another spelling
          else if (member.domain === ctx.domain) table.seen(member, Date.now());
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
