/**
 * Bed: cluster key rotation one host at a time under load (issue 21, "Key rotation exercised
 * across the bed"). Three hosts on K1 (multicast across the bridge, encrypted); clients keep
 * writing (sync replication) to the hosts not being restarted. Each host in turn is stopped
 * gracefully and started again with `CLOWDER_CLUSTER_KEY=K1,K2`, then each with `K2,K1` (sends
 * with K2), then each with `K2` alone. Throughout, every node's view stays whole except for the
 * host restarting, every write is answered 200 and every client's count goes up by exactly 1.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { bedUnavailable, NetBed } from '../helpers/netbed.js';
import { WriteLoad } from '../helpers/netbed-load.js';
import { waitFor } from '../helpers/wait.js';

const skip = await bedUnavailable(['nft']);
const DROP = 2000;

// biome-ignore lint/suspicious/noExplicitAny: stats JSON
type Stats = any;

describe('bed: key rotation under load', { skip }, () => {
  let bed: NetBed | undefined;
  let monitor: NodeJS.Timeout | undefined;
  let load: WriteLoad | undefined;
  after(async () => {
    clearInterval(monitor);
    await load?.stop();
    await bed?.destroy();
  });

  test('K1 → K1,K2 → K2,K1 → K2, one host at a time: membership never splits, no write fails or goes back', async (t) => {
    const t0 = Date.now();
    bed = await NetBed.create({ nodes: 3, membership: 'multicast', dropTimeMs: DROP, send: 'sync' });
    const b = bed;
    const all = [1, 2, 3];
    await b.waitView(b.fullMesh(), 'the full cluster on K1', 15_000);
    const k1 = b.clusterKey;
    const k2 = randomBytes(32).toString('base64');

    // The host being restarted (0: none). Its own view and the others' view of it may be partial.
    let restarting = 0;
    const splits: string[] = [];
    monitor = setInterval(() => {
      for (const k of all) {
        if (k === restarting || !b.host(k).node.running) continue;
        const want = all.filter((o) => o !== k && o !== restarting).map((o) => `h${o}`);
        const have = b.members(k);
        const missing = want.filter((m) => !have.includes(m));
        if (missing.length > 0) splits.push(`${Date.now() - t0} ms: h${k} lost ${missing} (${b.describeViews()})`);
      }
    }, 20);

    load = new WriteLoad(b, 3, (c) => {
      const home = (c % 3) + 1;
      return [home, ...all.filter((k) => k !== home)].filter((k) => k !== restarting);
    });
    await load.progress(3, 'the load to run on K1');

    const phases: [string, string][] = [
      ['K1,K2', `${k1},${k2}`],
      ['K2,K1', `${k2},${k1}`],
      ['K2', k2],
    ];
    const times: string[] = [];
    for (const [label, keys] of phases) {
      for (const k of all) {
        const s0 = Date.now();
        restarting = k;
        // A request already sent to it but unread when the SIGTERM comes is closed by the stop.
        await waitFor(() => load!.inFlightTo(k) === 0, `requests to h${k} to end`);
        b.setClusterKey(k, keys);
        await b.stop(k);
        await b.restart(k);
        await b.waitView(b.fullMesh(), `h${k} back on ${label}`, 5 * DROP);
        restarting = 0;
        await load.progress(2, `writes to go on after h${k} came back on ${label}`);
        times.push(`h${k}→${label} ${Date.now() - s0} ms`);
        const s: Stats = await b.stats(k);
        assert.equal(s.channel.auth.keys, label.split(',').length, `h${k} runs with ${label}`);
      }
    }
    await load.stop();
    clearInterval(monitor);

    // Everyone on K2 alone: every hello and heartbeat now verifies with it.
    for (const k of all) {
      const s: Stats = await b.stats(k);
      assert.equal(s.channel.auth.keys, 1);
      assert.ok(s.channel.auth.acceptedByKey[0] > 0, `h${k} verified peers with K2`);
    }
    t.diagnostic(
      `${load.ok} writes, counts ${load.counts}; ${times.join(', ')}; ${Date.now() - t0} ms in all; failures ${load.failures.length}`,
    );
    assert.deepEqual(splits, [], 'no node lost a member other than the one restarting');
    assert.deepEqual(load.failures, [], 'every write answered 200 by the first node asked');
    assert.deepEqual(load.unanswered, []);
    assert.deepEqual(load.broken, [], 'every count is the previous + 1');
  });
});
