/**
 * What a DNS name says about the cluster's members: the addresses of its A and AAAA records on
 * the configured port, or, for an SRV name (`_service._proto.name`, as Kubernetes publishes for a
 * named port), each record's target host on the record's port. Pure over a {@link DnsLookup}, so
 * the logic is tested with a fake resolver; dns.ts runs it on node:dns.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { PeerAddress } from './static.js';

/** The three queries DNS membership makes (node:dns's `Resolver` has them; tests pass a fake). */
export interface DnsLookup {
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  resolveSrv(name: string): Promise<{ name: string; port: number; priority: number; weight: number }[]>;
}

/** The outcome of one resolution: the addresses in a stable order (sorted), and what the cap left out. */
export interface Resolved {
  readonly addresses: PeerAddress[];
  /** Addresses beyond `limit`, plus SRV targets not looked up because `limit` addresses were already found. */
  readonly overLimit: number;
}

/** A query that failed for another reason than "no such name" or "no records of that type". */
export class DnsQueryError extends Error {
  constructor(
    readonly query: string,
    readonly code: string,
  ) {
    super(`DNS query ${query} failed: ${code}`);
  }
}

/** How many SRV targets are looked up at once. */
const TARGET_LOOKUPS_AT_ONCE = 8;

/** True for a name in SRV form: its first label starts with an underscore (`_clowder._tcp.svc…`). */
export function isSrvName(name: string): boolean {
  return name.startsWith('_');
}

/**
 * Resolves `name` to peer addresses. A name without records (NXDOMAIN or no data: a Kubernetes
 * headless Service with no ready endpoint) is an empty answer, not an error; any other failure
 * throws {@link DnsQueryError} (the caller keeps its last list). At most `limit` addresses are
 * returned, the lowest in sort order, so that every node keeps the same ones.
 */
export async function resolveAddresses(
  lookup: DnsLookup,
  name: string,
  port: number | undefined,
  limit: number,
): Promise<Resolved> {
  if (!isSrvName(name)) {
    if (port === undefined) throw new TypeError(`DNS membership: ${name} is not an SRV name, so it needs a port`);
    const hosts = await hostAddresses(lookup, name);
    return capped(
      hosts.map((host) => ({ host, port })),
      limit,
      0,
    );
  }
  const records = await orEmpty(lookup.resolveSrv(name), `SRV ${name}`);
  // One address per (target, port); "." is RFC 2782's "no service here".
  const wanted = new Map<string, { target: string; ports: Set<number> }>();
  for (const r of records) {
    if (typeof r.name !== 'string' || !Number.isInteger(r.port) || r.port < 1 || r.port > 65535) continue;
    const target = r.name.replace(/\.$/, '');
    if (target === '') continue;
    const entry = wanted.get(target.toLowerCase()) ?? { target, ports: new Set<number>() };
    entry.ports.add(r.port);
    wanted.set(target.toLowerCase(), entry);
  }
  const targets = [...wanted.values()].sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
  const out: PeerAddress[] = [];
  let next = 0;
  let skipped = 0;
  // Bounded: never more lookups than addresses still wanted, a few at a time.
  while (next < targets.length) {
    if (out.length >= limit) {
      skipped += targets.length - next;
      break;
    }
    const batch = targets.slice(next, next + Math.min(TARGET_LOOKUPS_AT_ONCE, limit - out.length));
    next += batch.length;
    const hosts = await Promise.all(
      batch.map((t) => (isIP(t.target) !== 0 ? [t.target] : hostAddresses(lookup, t.target))),
    );
    batch.forEach((t, i) => {
      for (const host of hosts[i]!) for (const p of t.ports) out.push({ host, port: p });
    });
  }
  return capped(out, limit, skipped);
}

/** A and AAAA addresses of `name`, deduplicated. */
async function hostAddresses(lookup: DnsLookup, name: string): Promise<string[]> {
  const [v4, v6] = await Promise.all([
    orEmpty(lookup.resolve4(name), `A ${name}`),
    orEmpty(lookup.resolve6(name), `AAAA ${name}`),
  ]);
  const out = new Set<string>();
  for (const a of v4) if (isIP(a) === 4) out.add(a);
  for (const a of v6) if (isIP(a) === 6) out.add(a.toLowerCase());
  return [...out];
}

/** Answer codes that mean "this name has no such records": an empty answer. */
const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND']);

async function orEmpty<T>(query: Promise<T[]>, what: string): Promise<T[]> {
  try {
    return await query;
  } catch (err) {
    const code = String((err as NodeJS.ErrnoException).code ?? (err as Error).message ?? err);
    if (NO_RECORDS.has(code)) return [];
    throw new DnsQueryError(what, code);
  }
}

/** Deduplicated, sorted by address then port, at most `limit`; `skipped` SRV targets counted as left out. */
function capped(list: PeerAddress[], limit: number, skipped: number): Resolved {
  const byKey = new Map<string, PeerAddress>();
  for (const a of list) byKey.set(`${a.host}|${a.port}`, a);
  const sorted = [...byKey.values()].sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : a.port - b.port));
  return { addresses: sorted.slice(0, limit), overLimit: skipped + Math.max(0, sorted.length - limit) };
}

/**
 * node:dns's c-ares resolver: `servers` ("ip" or "ip:port", "[v6]:port") or the system's
 * (/etc/resolv.conf). It keeps no cache, so every refresh asks the server.
 */
export function systemLookup(servers: readonly string[] | undefined, timeoutMs: number): DnsLookup {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers !== undefined && servers.length > 0) resolver.setServers([...servers]);
  return resolver;
}
