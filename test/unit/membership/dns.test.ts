/**
 * DNS membership without sockets: the resolution logic over a fake resolver (A/AAAA, SRV, empty
 * answers, failures, the cap), and DnsMembership over a fake channel context whose pings answer
 * for the "alive" addresses — added when DNS lists them, kept when DNS drops them while they
 * answer, dropped only once they stop answering, the last list kept through DNS failures, the
 * node's own address excluded, the cap counted.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Logger } from '../../../src/core/logger.js';
import { DnsMembership } from '../../../src/membership/dns.js';
import { type DnsLookup, DnsQueryError, isSrvName, resolveAddresses } from '../../../src/membership/dns-resolve.js';
import type { MembershipContext, RemoveReason } from '../../../src/membership/membership.js';
import type { MemberDescriptor } from '../../../src/wire/member.js';
import { waitFor } from '../../helpers/wait.js';

function dnsError(code: string): Error {
  return Object.assign(new Error(`query failed: ${code}`), { code });
}

/** A resolver answering from tables; a name missing from a table is NXDOMAIN; `fail` makes a query fail. */
class FakeLookup implements DnsLookup {
  a = new Map<string, string[]>();
  aaaa = new Map<string, string[]>();
  srv = new Map<string, { name: string; port: number }[]>();
  fail: string | undefined;
  queries: string[] = [];

  #answer<T>(kind: string, table: Map<string, T[]>, name: string): Promise<T[]> {
    this.queries.push(`${kind} ${name}`);
    if (this.fail !== undefined) return Promise.reject(dnsError(this.fail));
    const v = table.get(name);
    return v === undefined ? Promise.reject(dnsError('ENOTFOUND')) : Promise.resolve([...v]);
  }
  resolve4(name: string): Promise<string[]> {
    return this.#answer('A', this.a, name);
  }
  resolve6(name: string): Promise<string[]> {
    return this.#answer('AAAA', this.aaaa, name);
  }
  resolveSrv(name: string): Promise<{ name: string; port: number; priority: number; weight: number }[]> {
    return this.#answer('SRV', this.srv, name).then((l) => l.map((r) => ({ ...r, priority: 0, weight: 0 })));
  }
}

const keys = (list: { host: string; port: number }[]) => list.map((a) => `${a.host}:${a.port}`);

describe('resolveAddresses', () => {
  it('an A/AAAA name: every address on the configured port, deduplicated and sorted', async () => {
    const l = new FakeLookup();
    l.a.set('svc', ['10.0.0.3', '10.0.0.1', '10.0.0.3', 'not-an-ip']);
    l.aaaa.set('svc', ['FD00::2']);
    const r = await resolveAddresses(l, 'svc', 4000, 256);
    assert.deepEqual(keys(r.addresses), ['10.0.0.1:4000', '10.0.0.3:4000', 'fd00::2:4000']);
    assert.equal(r.overLimit, 0);
    assert.deepEqual(l.queries.sort(), ['A svc', 'AAAA svc'], 'no SRV query for a plain name');
  });

  it('no records (NXDOMAIN, or no AAAA records) is an empty answer, not an error', async () => {
    const l = new FakeLookup();
    assert.deepEqual((await resolveAddresses(l, 'nobody', 4000, 256)).addresses, []);
    l.a.set('v4only', ['10.0.0.1']);
    const noData: DnsLookup = {
      resolve4: (n) => l.resolve4(n),
      resolve6: () => Promise.reject(dnsError('ENODATA')),
      resolveSrv: (n) => l.resolveSrv(n),
    };
    assert.deepEqual(keys((await resolveAddresses(noData, 'v4only', 4000, 256)).addresses), ['10.0.0.1:4000']);
  });

  it('a failed query (timeout, refused, server failure) throws DnsQueryError naming it', async () => {
    for (const code of ['ETIMEOUT', 'ECONNREFUSED', 'ESERVFAIL', 'EREFUSED']) {
      const l = new FakeLookup();
      l.fail = code;
      await assert.rejects(resolveAddresses(l, 'svc', 4000, 256), (err: unknown) => {
        assert.ok(err instanceof DnsQueryError);
        assert.equal(err.code, code);
        assert.match(err.message, /svc/);
        return true;
      });
    }
  });

  it('an SRV name: each target host on its record port; "." skipped; an IP target used as it is', async () => {
    const l = new FakeLookup();
    const name = '_clowder._tcp.svc';
    assert.ok(isSrvName(name) && !isSrvName('svc'));
    l.srv.set(name, [
      { name: 'b.svc', port: 4001 },
      { name: 'a.svc.', port: 4002 },
      { name: '.', port: 4003 },
      { name: '10.9.9.9', port: 4004 },
      { name: 'a.svc', port: 4005 },
      { name: 'gone.svc', port: 4006 },
    ]);
    l.a.set('a.svc', ['10.0.0.1']);
    l.a.set('b.svc', ['10.0.0.2']);
    const r = await resolveAddresses(l, name, undefined, 256);
    assert.deepEqual(keys(r.addresses), ['10.0.0.1:4002', '10.0.0.1:4005', '10.0.0.2:4001', '10.9.9.9:4004']);
    assert.ok(!l.queries.some((q) => q.includes('10.9.9.9')), 'an IP target is not looked up');
  });

  it('an A name needs a port (the config always gives one)', async () => {
    await assert.rejects(resolveAddresses(new FakeLookup(), 'svc', undefined, 256), TypeError);
  });

  it('the cap keeps the lowest addresses (the same on every node) and counts the rest', async () => {
    const l = new FakeLookup();
    l.a.set('svc', ['10.0.0.5', '10.0.0.1', '10.0.0.4', '10.0.0.2', '10.0.0.3']);
    const r = await resolveAddresses(l, 'svc', 4000, 3);
    assert.deepEqual(keys(r.addresses), ['10.0.0.1:4000', '10.0.0.2:4000', '10.0.0.3:4000']);
    assert.equal(r.overLimit, 2);
  });

  it('the cap bounds the SRV target lookups too', async () => {
    const l = new FakeLookup();
    const records = Array.from({ length: 1000 }, (_, i) => ({
      name: `n${String(i).padStart(4, '0')}.svc`,
      port: 4000,
    }));
    l.srv.set('_c._tcp.svc', records);
    for (const r of records)
      l.a.set(r.name, [`10.0.${Math.floor(records.indexOf(r) / 250)}.${records.indexOf(r) % 250}`]);
    const r = await resolveAddresses(l, '_c._tcp.svc', undefined, 10);
    assert.equal(r.addresses.length, 10);
    assert.equal(r.overLimit, 990);
    assert.ok(l.queries.length <= 1 + 2 * 10, `${l.queries.length} queries for 10 addresses`);
  });
});

// ---- DnsMembership over a fake channel context -----------------------------------------------

const LOCAL: MemberDescriptor = member('local', '10.0.0.1', 4000);

function member(name: string, host: string, port: number): MemberDescriptor {
  return {
    id: `${name}`.padEnd(32, '0'),
    protocolVersion: 1,
    host,
    port,
    name,
    domain: 'default',
    startTime: 1,
    payload: new Uint8Array(0),
  };
}

interface Harness {
  lookup: FakeLookup;
  dns: DnsMembership;
  /** Members answering pings, by "host:port". */
  alive: Map<string, MemberDescriptor>;
  pings: Map<string, number>;
  view: Map<string, MemberDescriptor>;
  events: { type: 'added' | 'removed'; name: string; reason?: RemoveReason }[];
  warnings: string[];
  start(): Promise<void>;
}

function harness(overrides: Partial<ConstructorParameters<typeof DnsMembership>[0]> = {}): Harness {
  const lookup = new FakeLookup();
  const alive = new Map<string, MemberDescriptor>();
  alive.set('10.0.0.1:4000', LOCAL);
  const pings = new Map<string, number>();
  const view = new Map<string, MemberDescriptor>();
  const events: Harness['events'] = [];
  const warnings: string[] = [];
  const logger: Logger = {
    debug() {},
    info() {},
    warn: (_o, msg) => warnings.push(msg ?? ''),
    error() {},
    child: () => logger,
  };
  const ctx: MembershipContext = {
    localId: LOCAL.id,
    localDescriptor: () => Buffer.alloc(0),
    local: () => LOCAL,
    keys: undefined,
    replayWindowMs: 30_000,
    encrypt: false,
    domain: 'default',
    logger,
    events: {
      added: (m) => {
        view.set(m.id, m);
        events.push({ type: 'added', name: m.name });
      },
      // The channel's failure detector would verify a timeout first; the fake trusts it.
      removed: (m, reason) => {
        view.delete(m.id);
        events.push({ type: 'removed', name: m.name, reason });
      },
    },
    ping: (host, port) => {
      const key = `${host}:${port}`;
      pings.set(key, (pings.get(key) ?? 0) + 1);
      const m = alive.get(key);
      return m ? Promise.resolve(m) : Promise.reject(new Error('ECONNREFUSED'));
    },
    verify: (m) => Promise.resolve(alive.get(`${m.host}:${m.port}`)?.id === m.id),
    countRefused: () => {},
  };
  const dns = new DnsMembership(
    { name: 'svc', port: 4000, refreshMs: 60_000, maxMembers: 256, pingIntervalMs: 10, dropTimeMs: 150, ...overrides },
    lookup,
  );
  return { lookup, dns, alive, pings, view, events, warnings, start: () => dns.start(ctx) };
}

const names = (h: Harness) => [...h.view.values()].map((m) => m.name).sort();

/** Waits until `key` was pinged `n` more times from now. */
async function pingedMore(h: Harness, key: string, n: number): Promise<void> {
  const from = h.pings.get(key) ?? 0;
  await waitFor(() => (h.pings.get(key) ?? 0) >= from + n, `${n} more pings of ${key}`);
}

describe('DnsMembership', () => {
  it('the addresses DNS lists become members once they answer; the own address is excluded', async () => {
    const h = harness();
    h.lookup.a.set('svc', ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    h.alive.set('10.0.0.2:4000', member('b', '10.0.0.2', 4000));
    h.alive.set('10.0.0.3:4000', member('c', '10.0.0.3', 4000));
    await h.start();
    await h.dns.settled(); // resolved and every listed address tried once
    assert.deepEqual(names(h), ['b', 'c']);
    assert.ok((h.pings.get('10.0.0.4:4000') ?? 0) >= 1, 'the silent address was tried');
    await pingedMore(h, '10.0.0.2:4000', 3);
    assert.ok(
      (h.pings.get('10.0.0.1:4000') ?? 0) <= 1,
      'its own address is pinged at most once (to learn it is itself)',
    );
    assert.ok(!h.view.has(LOCAL.id));
    assert.deepEqual(h.dns.stats().dns, {
      resolves: 1,
      resolveErrors: 0,
      emptyAnswers: 0,
      refusedAddresses: 0,
      listed: 4,
      unlisted: 0,
    });
    await h.dns.stop();
  });

  it('an address new in DNS is connected at the next resolution', async () => {
    const h = harness();
    h.lookup.a.set('svc', ['10.0.0.2']);
    h.alive.set('10.0.0.2:4000', member('b', '10.0.0.2', 4000));
    h.alive.set('10.0.0.5:4000', member('e', '10.0.0.5', 4000));
    await h.start();
    await h.dns.settled();
    assert.deepEqual(names(h), ['b']);
    await pingedMore(h, '10.0.0.2:4000', 3);
    assert.equal(h.pings.get('10.0.0.5:4000'), undefined, 'an address DNS does not list is not probed');
    h.lookup.a.set('svc', ['10.0.0.2', '10.0.0.5']);
    await h.dns.refresh();
    await waitFor(() => h.view.size === 2, 'e added');
    assert.deepEqual(names(h), ['b', 'e']);
    await h.dns.stop();
  });

  it('a member DNS no longer lists stays while it answers, and is dropped once it stops answering', async () => {
    const h = harness();
    h.lookup.a.set('svc', ['10.0.0.2', '10.0.0.3']);
    h.alive.set('10.0.0.2:4000', member('b', '10.0.0.2', 4000));
    h.alive.set('10.0.0.3:4000', member('c', '10.0.0.3', 4000));
    await h.start();
    await h.dns.settled();
    assert.deepEqual(names(h), ['b', 'c']);

    // DNS drops c (a blip, a failed readiness probe): c still answers, so it stays.
    h.lookup.a.set('svc', ['10.0.0.2']);
    await h.dns.refresh();
    assert.deepEqual(h.dns.stats().dns, {
      resolves: 2,
      resolveErrors: 0,
      emptyAnswers: 0,
      refusedAddresses: 0,
      listed: 1,
      unlisted: 1,
    });
    // Well past dropTime (150 ms at 10 ms pings): still pinged, still a member.
    await pingedMore(h, '10.0.0.3:4000', 40);
    assert.deepEqual(names(h), ['b', 'c']);
    assert.ok(!h.events.some((e) => e.type === 'removed'));

    // An empty answer (NXDOMAIN: no ready endpoint) removes nobody either; counted and warned about.
    h.lookup.a.delete('svc');
    await h.dns.refresh();
    await h.dns.refresh();
    assert.equal(h.dns.stats().dns.emptyAnswers, 2);
    assert.equal(h.warnings.filter((w) => w.includes('fully qualified')).length, 1, 'warned once per 30 s');
    await pingedMore(h, '10.0.0.2:4000', 40);
    assert.deepEqual(names(h), ['b', 'c']);

    // c stops answering: dropped after dropTime (the channel's failure detector verifies that),
    // and its address is no longer pinged.
    h.alive.delete('10.0.0.3:4000');
    await waitFor(() => !names(h).includes('c'), 'c dropped');
    assert.deepEqual(h.events.at(-1), { type: 'removed', name: 'c', reason: 'timeout' });
    await waitFor(() => h.dns.stats().dns.unlisted === 1 && !names(h).includes('c'), 'b still kept');
    h.alive.delete('10.0.0.2:4000');
    await waitFor(() => h.dns.stats().dns.unlisted === 0, 'unanswered unlisted addresses retired');
    const after = h.pings.get('10.0.0.3:4000')!;
    h.lookup.a.set('svc', ['10.0.0.4']);
    h.alive.set('10.0.0.4:4000', member('d', '10.0.0.4', 4000));
    await h.dns.refresh();
    await pingedMore(h, '10.0.0.4:4000', 20);
    assert.equal(h.pings.get('10.0.0.3:4000'), after, 'a retired address is not pinged any more');
    await h.dns.stop();
  });

  it('a member that connects before DNS lists it is taken (the records lag), within maxMembers', async () => {
    const h = harness({ maxMembers: 3 });
    h.lookup.a.set('svc', ['10.0.0.1', '10.0.0.2']);
    h.alive.set('10.0.0.2:4000', member('b', '10.0.0.2', 4000));
    await h.start();
    await h.dns.settled();
    // e (a starting Kubernetes pod, not ready, so not in DNS yet) completed a hello with us.
    const e = member('e', '10.0.0.5', 4000);
    h.alive.set('10.0.0.5:4000', e);
    h.dns.heard(e);
    assert.deepEqual(names(h), ['b', 'e'], 'added at once');
    assert.equal(h.dns.stats().dns.unlisted, 1);
    await pingedMore(h, '10.0.0.5:4000', 3); // and pinged from then on
    // The cap counts it: a fourth address is refused and counted.
    const f = member('f', '10.0.0.6', 4000);
    h.dns.heard(f);
    assert.deepEqual(names(h), ['b', 'e']);
    assert.equal(h.dns.stats().dns.refusedAddresses, 1);
    // DNS lists e once it is ready: the same target, now listed.
    h.lookup.a.set('svc', ['10.0.0.1', '10.0.0.2', '10.0.0.5']);
    await h.dns.refresh();
    assert.deepEqual(
      { listed: h.dns.stats().dns.listed, unlisted: h.dns.stats().dns.unlisted },
      { listed: 3, unlisted: 0 },
    );
    assert.deepEqual(names(h), ['b', 'e']);
    await h.dns.stop();
  });

  it('maxMembers holds for members that connect before the first answer', async () => {
    const h = harness({ maxMembers: 1 });
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow = h.lookup.resolve4.bind(h.lookup);
    h.lookup.resolve4 = (n) => gate.then(() => slow(n));
    h.lookup.a.set('svc', []);
    await h.start();
    h.dns.heard(member('b', '10.0.0.2', 4000));
    h.dns.heard(member('c', '10.0.0.3', 4000));
    assert.deepEqual(names(h), ['b']);
    assert.equal(h.dns.stats().dns.refusedAddresses, 1);
    release();
    await h.dns.settled();
    await h.dns.stop();
  });

  it('a failed resolution keeps the last list, counts and logs it (rate-limited), and never throws', async () => {
    const h = harness();
    h.lookup.a.set('svc', ['10.0.0.2']);
    h.alive.set('10.0.0.2:4000', member('b', '10.0.0.2', 4000));
    h.alive.set('10.0.0.3:4000', member('c', '10.0.0.3', 4000));
    await h.start();
    await h.dns.settled();
    h.lookup.fail = 'ETIMEOUT';
    for (let i = 0; i < 5; i++) await h.dns.refresh();
    const s = h.dns.stats().dns;
    assert.equal(s.resolveErrors, 5);
    assert.equal(s.listed, 1, 'the last good list is kept');
    assert.equal(h.warnings.filter((w) => w.includes('resolution failed')).length, 1, 'logged once per 30 s');
    await pingedMore(h, '10.0.0.2:4000', 3);
    assert.deepEqual(names(h), ['b']);
    // Back: the new answer applies.
    h.lookup.fail = undefined;
    h.lookup.a.set('svc', ['10.0.0.2', '10.0.0.3']);
    await h.dns.refresh();
    await waitFor(() => names(h).length === 2, 'c added after DNS recovered');
    await h.dns.stop();
  });

  it('settles when the first resolution fails (a node alone starts instead of waiting)', async () => {
    const h = harness();
    h.lookup.fail = 'ECONNREFUSED';
    await h.start();
    await h.dns.settled();
    assert.equal(h.dns.stats().dns.resolveErrors, 1);
    await h.dns.stop();
  });

  it('maxMembers bounds the addresses kept (new ones refused and counted; members never evicted)', async () => {
    const h = harness({ maxMembers: 3 });
    h.lookup.a.set('svc', ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5']);
    for (const i of [2, 3, 4, 5]) h.alive.set(`10.0.0.${i}:4000`, member(`m${i}`, `10.0.0.${i}`, 4000));
    await h.start();
    await h.dns.settled();
    assert.deepEqual(names(h), ['m2', 'm3'], 'the lowest three addresses, its own among them');
    assert.equal(h.dns.stats().dns.refusedAddresses, 2);
    // DNS now lists others: m2 and m3 answer, so they keep their places; the newcomers wait.
    h.lookup.a.set('svc', ['10.0.0.4', '10.0.0.5']);
    await h.dns.refresh();
    const s = h.dns.stats().dns;
    assert.equal(s.listed + s.unlisted, 3, 'never more than maxMembers addresses');
    assert.equal(s.refusedAddresses, 3);
    await pingedMore(h, '10.0.0.2:4000', 3);
    assert.deepEqual(names(h), ['m2', 'm3', 'm4']);
    await h.dns.stop();
  });

  it('stop ends refreshes and pings; a resolution finishing after stop changes nothing', async () => {
    const h = harness();
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow = h.lookup.resolve4.bind(h.lookup);
    h.lookup.resolve4 = (n) => gate.then(() => slow(n));
    h.lookup.a.set('svc', ['10.0.0.2']);
    h.alive.set('10.0.0.2:4000', member('b', '10.0.0.2', 4000));
    await h.start();
    await h.dns.stop();
    release();
    await h.dns.settled();
    assert.equal(h.dns.stats().dns.resolves, 0);
    assert.equal(h.view.size, 0);
  });
});
