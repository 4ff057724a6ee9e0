/**
 * Bed: rolling upgrade across protocol versions (issue 21, "Rolling upgrade"), with two real
 * builds: the current package (dist/) and the next release, a build of it that speaks
 * PROTOCOL_VERSION + 1 and still PROTOCOL_VERSION (test/helpers/variant-build.ts). Three hosts run
 * the current build (multicast across the bridge, encrypted, sync replication) while clients with
 * their own session cookies keep incrementing their counters on the hosts not being upgraded. Each
 * host in turn is stopped gracefully (SIGTERM) and started with the next build. Proven throughout:
 * the mixed cluster serves (every write 200, +1), no node's view loses a member other than the
 * host being upgraded, each node sees each member at the version its build speaks; at the end
 * every node holds every session at its last acknowledged count. Then a fourth host starts with a
 * build that skipped a version (speaks only PROTOCOL_VERSION + 2): it is refused on both sides
 * (`transport.refusedProtocolVersion`, the "incompatible protocol version" log line), never
 * becomes a member, and the running cluster goes on undisturbed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { PROTOCOL_VERSION } from '../../src/wire/member.js';
import { bedUnavailable, NetBed } from '../helpers/netbed.js';
import { WriteLoad } from '../helpers/netbed-load.js';
import { peek, versions, writeProbeApp } from '../helpers/netbed-probe.js';
import { buildVariant, type VariantBuild } from '../helpers/variant-build.js';
import { waitFor } from '../helpers/wait.js';

const skip = await bedUnavailable(['nft']);
const REFUSAL = /incompatible protocol version/;

// biome-ignore lint/suspicious/noExplicitAny: stats JSON
type Stats = any;
const refused = (s: Stats) => s.channel.transport.refusedProtocolVersion as number;
const cliOf = (b: VariantBuild) => join(b.dir, 'dist', 'cli', 'main.js');

describe('bed: rolling upgrade to the next protocol version under load', { skip }, () => {
  let bed: NetBed | undefined;
  let load: WriteLoad | undefined;
  let monitor: NodeJS.Timeout | undefined;
  const builds: VariantBuild[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'clowder-upgrade-'));
  after(async () => {
    clearInterval(monitor);
    await load?.stop();
    await bed?.destroy();
    await Promise.all(builds.map((b) => b.remove()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('h1..h3 upgraded one at a time: no split, no write lost; a host sharing no version is refused both ways', async (t) => {
    const t0 = Date.now();
    const next = await buildVariant(PROTOCOL_VERSION + 1, PROTOCOL_VERSION);
    builds.push(next);
    // A release that dropped every version the next one speaks (an upgrade that skipped one).
    const skipped = await buildVariant(PROTOCOL_VERSION + 2, PROTOCOL_VERSION + 2);
    builds.push(skipped);

    bed = await NetBed.create({ nodes: 4, started: 3, membership: 'multicast', send: 'sync', app: writeProbeApp(dir) });
    const b = bed;
    const drop = b.options.dropTimeMs;
    const all = [1, 2, 3];
    await b.waitView(b.fullMesh(), 'the full cluster on the current build', 15_000);
    for (const k of all) assert.equal((await versions(b, k)).protocolVersion, PROTOCOL_VERSION, `h${k} current`);

    // The host being upgraded (0: none). Its own view and the others' view of it may be partial.
    let upgrading = 0;
    const splits: string[] = [];
    monitor = setInterval(() => {
      for (const k of all) {
        if (k === upgrading || !b.host(k).node.running) continue;
        const want = all.filter((o) => o !== k && o !== upgrading).map((o) => `h${o}`);
        const missing = want.filter((m) => !b.members(k).includes(m));
        if (missing.length > 0) splits.push(`${Date.now() - t0} ms: h${k} lost ${missing} (${b.describeViews()})`);
      }
    }, 20);

    load = new WriteLoad(b, 3, (c) => {
      const home = (c % 3) + 1;
      return [home, ...all.filter((k) => k !== home)].filter((k) => k !== upgrading);
    });
    await load.progress(3, 'the load to run on the current build');

    const times: string[] = [];
    for (const k of all) {
      const s0 = Date.now();
      upgrading = k;
      // Nothing in flight to it: a request it never read would be closed by the stop (rolling-restart.test.ts).
      await waitFor(() => load!.inFlightTo(k) === 0, `requests to h${k} to end`);
      b.setBuild(k, cliOf(next));
      await b.stop(k);
      await b.restart(k);
      await b.waitView(b.fullMesh(), `h${k} back on the next build`, 5 * drop);
      upgrading = 0;
      await load.progress(2, `writes to go on in the mixed cluster after h${k} was upgraded`);
      times.push(`h${k} ${Date.now() - s0} ms`);
      // Each node sees each member at the version its build speaks: the two versions interoperate.
      const want = (o: number) => (o <= k ? PROTOCOL_VERSION + 1 : PROTOCOL_VERSION);
      for (const o of all) {
        const v = await versions(b, o);
        assert.equal(v.protocolVersion, want(o), `h${o} runs its build`);
        for (const p of all.filter((x) => x !== o)) assert.equal(v.members[`h${p}`], want(p), `h${o} sees h${p}`);
      }
    }
    const upgraded = Date.now();

    // h4 on a build that shares no version with the cluster: refused both ways, never a member.
    const before: Stats[] = await Promise.all(all.map((k) => b.stats(k)));
    b.setBuild(4, cliOf(skipped));
    await b.startHost(4);
    assert.equal((await versions(b, 4)).protocolVersion, PROTOCOL_VERSION + 2);
    await waitFor(
      async () => {
        const s: Stats[] = await Promise.all([1, 2, 3, 4].map((k) => b.stats(k)));
        return refused(s[3]) >= 3 && before.every((s0, i) => refused(s[i]) >= refused(s0) + 3);
      },
      'refusals on both sides',
      { timeoutMs: 5 * drop, intervalMs: 100 },
    );
    await load.progress(3, 'the cluster to go on serving beside the refused host');
    // Several heartbeat rounds beyond the refusals: still no member either way.
    const h4From = Date.now();
    await waitFor(() => Date.now() - h4From >= drop, 'a dropTime of refused heartbeats', { timeoutMs: 2 * drop });
    await load.stop();
    clearInterval(monitor);

    assert.deepEqual(b.members(4), [], 'h4 never admitted a member');
    assert.ok(b.viewIs({ 1: [2, 3], 2: [1, 3], 3: [1, 2] }), `the cluster never admitted h4: ${b.describeViews()}`);
    for (const k of [1, 2, 3, 4]) {
      const lines = b.host(k).node.logs.filter((l) => typeof l.msg === 'string' && REFUSAL.test(l.msg));
      assert.ok(lines.length >= 1, `h${k} logged the refusal`);
      const peer = k === 4 ? all.map((o) => b.host(o).address) : [b.host(4).address];
      for (const address of peer)
        assert.ok(
          lines.some((l) => String(l.peer).startsWith(`${address}:`)),
          `h${k} logged the refusal of ${address}: ${JSON.stringify(lines)}`,
        );
    }
    const after4: Stats[] = await Promise.all([1, 2, 3, 4].map((k) => b.stats(k)));

    // Every acknowledged write kept: every node holds every session at its client's last count.
    for (const [c, cookie] of load.cookies.entries()) {
      for (const k of all) {
        const p = await peek(b, k, cookie!);
        assert.equal(p.count, load.counts[c], `h${k} holds client ${c}'s session at its last count`);
      }
      assert.equal((await peek(b, 4, cookie!)).held, false, 'the refused host received no session');
    }
    t.diagnostic(
      `${load.ok} writes, counts ${load.counts}; upgrades ${times.join(', ')}; refusals counted ` +
        `${after4.map((s, i) => `h${i + 1}=${refused(s)}`).join(' ')} over ${Date.now() - upgraded} ms; ` +
        `${Date.now() - t0} ms in all`,
    );
    assert.deepEqual(splits, [], 'no node lost a member other than the one being upgraded');
    assert.deepEqual(load.failures, [], 'every write answered 200 by the first node asked');
    assert.deepEqual(load.unanswered, []);
    assert.deepEqual(load.broken, [], 'every count is the previous + 1');
  });
});
