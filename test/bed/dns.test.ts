/**
 * Bed: DNS membership across network namespaces (issue 21, "DNS discovery tested in the bed").
 * dnsmasq runs in h1's namespace on 10.77.0.1:53; the name `nodes.bed.test` resolves to the hosts'
 * bed addresses; every node asks it (`membership.type: dns`, `servers: ["10.77.0.1"]`) with a
 * cluster key (encrypted). Three hosts form one cluster by DNS and replicate a session; then the
 * records change: a 4th host added to DNS is found (and gets the session), a host removed from DNS
 * but alive is kept (no false removal), a host removed from DNS and killed is dropped.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { bedUnavailable, countOf, NetBed } from '../helpers/netbed.js';
import { BedDns, dnsmasqMissing } from '../helpers/netbed-dns.js';
import { waitFor } from '../helpers/wait.js';

const skip = (await bedUnavailable(['nft'])) ?? dnsmasqMissing();
const DOMAIN = 'bed.test';
const NAME = `nodes.${DOMAIN}`;
const DROP = 2000;
const addr = (k: number) => `10.77.0.${k}`;

// biome-ignore lint/suspicious/noExplicitAny: stats JSON
type Stats = any;
const dnsStats = (s: Stats) =>
  s.channel.membership.dns as { resolves: number; resolveErrors: number; listed: number; unlisted: number };

describe('bed: DNS membership (dnsmasq in the bed)', { skip }, () => {
  let bed: NetBed | undefined;
  after(async () => {
    await bed?.destroy();
  });

  test('found by DNS; a host added is found, one removed but alive is kept, one removed and killed is dropped', async (t) => {
    const t0 = Date.now();
    bed = await NetBed.create({
      nodes: 4,
      membership: 'dns',
      dns: { name: NAME, server: addr(1), refreshMs: 300 },
      dropTimeMs: DROP,
      start: false,
    });
    const b = bed;
    const dns = await BedDns.start(b, 1, DOMAIN, { [NAME]: [addr(1), addr(2), addr(3)] });
    for (const k of [1, 2, 3]) await b.startHost(k);
    await b.waitView(b.fullMesh(), 'three hosts to find each other by DNS', 15_000);
    for (const k of [1, 2, 3]) {
      const s: Stats = await b.stats(k);
      assert.equal(s.channel.auth.keys, 1, `h${k} runs with the cluster key`);
      assert.equal(dnsStats(s).listed, 3, `h${k}: DNS lists three addresses`);
      assert.equal(dnsStats(s).resolveErrors, 0, `h${k}: every resolution answered`);
    }
    const cookie = (await b.get(2, '/app/counter')).session!;
    assert.equal(countOf((await b.get(2, '/app/counter', cookie)).body), 2);
    for (const k of [1, 3]) {
      await waitFor(async () => countOf((await b.get(k, '/app/read', cookie)).body) === 2, `h${k} to read count=2`, {
        timeoutMs: 5_000,
        intervalMs: 50,
      });
    }

    // A 4th host enters DNS and starts: everybody finds it, and it gets the session.
    await dns.setHosts({ [NAME]: [addr(1), addr(2), addr(3), addr(4)] });
    await b.startHost(4);
    const found = await b.waitView(b.fullMesh(), 'h4 to be found by every node', 15_000);
    await waitFor(async () => countOf((await b.get(4, '/app/read', cookie)).body) === 2, 'h4 to read count=2', {
      timeoutMs: 5_000,
      intervalMs: 50,
    });

    // h3 leaves DNS but keeps running: it stays a member everywhere, for well over dropTime.
    await dns.setHosts({ [NAME]: [addr(1), addr(2), addr(4)] });
    const since = Date.now();
    const base = await Promise.all([1, 2, 4].map(async (k) => dnsStats(await b.stats(k)).resolves));
    await waitFor(
      async () => {
        assert.ok(b.viewIs(b.fullMesh()), `a node dropped h3, alive but out of DNS: ${b.describeViews()}`);
        const now = await Promise.all([1, 2, 4].map(async (k) => dnsStats(await b.stats(k))));
        return (
          Date.now() - since >= 2 * DROP &&
          now.every((d, i) => d.listed === 3 && d.unlisted === 1 && d.resolves >= base[i]! + 3)
        );
      },
      'h1, h2, h4 to re-resolve (h3 unlisted) for 2 x dropTime',
      { timeoutMs: 6 * DROP, intervalMs: 100 },
    );
    assert.equal(countOf((await b.get(3, '/app/counter', cookie)).body), 3, 'h3 still serves and replicates');
    await waitFor(async () => countOf((await b.get(4, '/app/read', cookie)).body) === 3, 'h4 to read count=3', {
      timeoutMs: 5_000,
      intervalMs: 50,
    });

    // h3, out of DNS, dies: it is dropped; the rest stays whole.
    const killedAt = Date.now();
    await b.kill(3);
    await b.waitView({ 1: [2, 4], 2: [1, 4], 4: [1, 2] }, 'h3, dead and out of DNS, to be dropped', 5 * DROP);
    t.diagnostic(
      `h4 found in ${found} ms; h3 dropped ${Date.now() - killedAt} ms after its kill; ${Date.now() - t0} ms in all`,
    );
  });
});
