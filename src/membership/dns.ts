/**
 * DNS membership: the members are the addresses a DNS name resolves to, re-resolved every
 * refreshMs — a Kubernetes headless Service (`clusterIP: None`: one A/AAAA record per ready pod)
 * or a Docker Compose service name. It is static membership (static.ts) whose address list is
 * replaced by each resolution: every address is pinged over TCP, and a peer that answers is a
 * member; so is one that connects to this node (authenticated) before DNS lists it. DNS only
 * finds members; it never removes one. An address that leaves the records is
 * still pinged while its member answers, so only silence (dropTimeMs, then the failure detector's
 * verification) or a leave removes it: a DNS blip, a pod failing its readiness probe or a stale
 * answer cannot split the cluster. A failed resolution keeps the last list.
 */
import type { MemberDescriptor } from '../wire/member.js';
import { type DnsLookup, DnsQueryError, resolveAddresses, systemLookup } from './dns-resolve.js';
import type { MembershipContext, MembershipCounters, MembershipService } from './membership.js';
import { addressKey, type PeerAddress, StaticMembership } from './static.js';

export interface DnsMembershipConfig {
  /** The name to resolve: A/AAAA records, or SRV records when it starts with "_" (`_clowder._tcp.svc…`). */
  readonly name: string;
  /** The peers' receiver port for A/AAAA answers (SRV records carry their own); required for an A/AAAA name. */
  readonly port?: number;
  /** DNS servers as "ip" or "ip:port"; none: the system's resolver configuration. */
  readonly servers?: readonly string[];
  /** How often the name is resolved again. */
  readonly refreshMs: number;
  /** Addresses kept from DNS at most (this node's own included); more are refused and counted. */
  readonly maxMembers: number;
  readonly pingIntervalMs: number;
  readonly dropTimeMs: number;
}

/** DNS membership counters (channel stats, `membership.dns`). */
export interface DnsMembershipStats {
  /** Resolutions that got an answer (an empty one included). */
  resolves: number;
  /** Resolutions that failed (timeout, refused, server failure): the last list was kept. */
  resolveErrors: number;
  /** Answers without any address (NXDOMAIN, no records): members are kept, nobody new is found. */
  emptyAnswers: number;
  /** Addresses refused because maxMembers were already kept (counted at each resolution, and for each connection of an unlisted member). */
  refusedAddresses: number;
  /** Addresses the last answer listed (within maxMembers). */
  listed: number;
  /** Addresses not listed (any more, or yet), still pinged because a member answers there. */
  unlisted: number;
}

/** Repeated warnings (resolution failures, refusals) are logged at most this often. */
const LOG_EVERY_MS = 30_000;
/** Addresses named in a change log line at most. */
const LOGGED_ADDRESSES = 8;

export class DnsMembership implements MembershipService {
  readonly kind = 'dns';
  readonly #inner: StaticMembership;
  readonly #lookup: DnsLookup;
  #ctx: MembershipContext | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The first resolution (settled() waits for it), then the one in flight. */
  #first: Promise<void> = Promise.resolve();
  #resolving = false;
  #stopped = false;
  #listed = new Set<string>();
  readonly #stats = { resolves: 0, resolveErrors: 0, emptyAnswers: 0, refusedAddresses: 0 };
  /** Rate-limited logs: when each kind was last logged, and how many were not logged since. */
  readonly #quiet = new Map<string, { at: number; unlogged: number }>();
  #failing = false;

  /** @param lookup - the resolver (tests pass a fake); default node:dns on `config.servers`. */
  constructor(
    private readonly config: DnsMembershipConfig,
    lookup?: DnsLookup,
  ) {
    this.#inner = new StaticMembership({
      members: [],
      pingIntervalMs: config.pingIntervalMs,
      dropTimeMs: config.dropTimeMs,
      // A member that connects (authenticated) before DNS lists it is taken: the records lag,
      // and Kubernetes lists a starting pod only once it is ready.
      acceptUnlisted: true,
    });
    // The cap holds from the start, also for members that connect before the first answer.
    this.#inner.setTargets([], config.maxMembers);
    // A query may not outlast a refresh period by much: c-ares retries once, doubling the wait.
    this.#lookup = lookup ?? systemLookup(config.servers, Math.min(2000, Math.max(200, config.refreshMs)));
  }

  async start(ctx: MembershipContext): Promise<void> {
    this.#ctx = ctx;
    await this.#inner.start(ctx);
    this.#first = this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.config.refreshMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#inner.stop();
  }

  /** Resolves once the first resolution is done (answered or failed) and every address it gave was pinged once. */
  async settled(): Promise<void> {
    await this.#first;
    return this.#inner.settled();
  }

  /**
   * Resolves the name once and replaces the address list (the timer calls it every refreshMs; a
   * call while one is under way does nothing). Never rejects: a failure is counted, logged
   * (rate-limited) and leaves the list as it was.
   */
  async refresh(): Promise<void> {
    if (this.#resolving || this.#stopped || this.#ctx === undefined) return;
    this.#resolving = true;
    const log = this.#ctx.logger;
    const { name, port, maxMembers } = this.config;
    try {
      const { addresses, overLimit } = await resolveAddresses(this.#lookup, name, port, maxMembers);
      if (this.#stopped) return;
      this.#stats.resolves++;
      if (this.#failing) {
        this.#failing = false;
        log.info({ dnsName: name, addresses: addresses.length }, 'DNS membership: the name resolves again');
      }
      if (addresses.length === 0) {
        this.#stats.emptyAnswers++;
        // node:dns asks for the name as given: resolv.conf's search domains are not applied.
        this.#warn(
          'empty',
          { dnsName: name, emptyAnswers: this.#stats.emptyAnswers },
          'DNS membership: the name has no addresses (no such name, or no records); members are kept. ' +
            'The name is not completed with search domains: give it fully qualified, e.g. clowder.default.svc.cluster.local',
        );
      }
      const refused = overLimit + this.#inner.setTargets(addresses, maxMembers);
      this.#noteChanges(addresses);
      if (refused > 0) {
        this.#stats.refusedAddresses += refused;
        this.#warn(
          'refused',
          { dnsName: name, refused, maxMembers, refusedAddresses: this.#stats.refusedAddresses },
          'DNS membership: the name lists more addresses than membership.maxMembers; the others are ignored',
        );
      }
    } catch (err) {
      if (this.#stopped) return;
      this.#stats.resolveErrors++;
      this.#failing = true;
      this.#warn(
        'error',
        {
          dnsName: name,
          error: err instanceof DnsQueryError ? err.message : String((err as Error)?.message ?? err),
          resolveErrors: this.#stats.resolveErrors,
        },
        'DNS membership: resolution failed; the last member list is kept',
      );
    } finally {
      this.#resolving = false;
    }
  }

  /** Logs which addresses the answer added and dropped (a few of each). */
  #noteChanges(addresses: readonly PeerAddress[]): void {
    const now = new Set(addresses.map(addressKey));
    const added = [...now].filter((a) => !this.#listed.has(a));
    const dropped = [...this.#listed].filter((a) => !now.has(a));
    this.#listed = now;
    if (added.length === 0 && dropped.length === 0) return;
    this.#ctx!.logger.info(
      {
        dnsName: this.config.name,
        listed: now.size,
        added: added.slice(0, LOGGED_ADDRESSES),
        dropped: dropped.slice(0, LOGGED_ADDRESSES),
      },
      'DNS membership: the name lists other addresses (dropped ones stay members while they answer)',
    );
  }

  /** Logs a warning of `kind` at most every LOG_EVERY_MS, with how many were not logged since. */
  #warn(kind: string, fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    const q = this.#quiet.get(kind);
    if (q !== undefined && now - q.at < LOG_EVERY_MS) {
      q.unlogged++;
      return;
    }
    this.#ctx!.logger.warn({ ...fields, ...(q && q.unlogged > 0 ? { notLogged: q.unlogged } : {}) }, msg);
    this.#quiet.set(kind, { at: now, unlogged: 0 });
  }

  stats(): MembershipCounters & { dns: DnsMembershipStats } {
    const { listed, unlisted, refusedUnlisted } = this.#inner.targetCounts();
    return {
      ...this.#inner.stats(),
      dns: { ...this.#stats, refusedAddresses: this.#stats.refusedAddresses + refusedUnlisted, listed, unlisted },
    };
  }

  members(): MemberDescriptor[] {
    return this.#inner.members();
  }

  forget(id: string): void {
    this.#inner.forget(id);
  }

  left(id: string): Promise<void> | undefined {
    return this.#inner.left(id);
  }

  heard(member: MemberDescriptor): void {
    this.#inner.heard(member);
  }

  localChanged(): void {
    this.#inner.localChanged();
  }
}
