/**
 * Bed: rolling restart of every node under load behind a real HAProxy (issue 21, "Rolling restart
 * of every node under load: no session lost, no request failed behind the balancer"). Three
 * hosts run a node each (multicast across the bridge, encrypted, sync replication); a fourth runs
 * HAProxy with the shipped examples/haproxy/haproxy.cfg (adapted to the bed's addresses, see
 * test/helpers/netbed-haproxy.ts). Clients, each with its own session cookie, write sequentially
 * through HAProxy and follow the cookie it answers with (a node taking a session over re-issues
 * it with its own route). Each node in turn gets SIGTERM (it drains: readiness 503 at once, still
 * serving), exits, is started again, and the next one goes once HAProxy sees it up again.
 *
 * Proven: 0 failed requests, and 0 retried or redispatched by HAProxy (the drain, not the
 * balancer's retries, keeps every request whole: a retried GET after a half-served request could
 * count twice); every count is the previous + 1; each node exits 0 by itself; every node ends
 * holding every session at its final count.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { bedUnavailable, countOf, NetBed } from '../helpers/netbed.js';
import { BedHaproxy } from '../helpers/netbed-haproxy.js';
import { waitFor } from '../helpers/wait.js';

const skip = (await bedUnavailable(['nft'])) ?? (await haproxyMissing());
const CLIENTS = 12;
const BALANCER = 4;

async function haproxyMissing(): Promise<string | undefined> {
  const { existsSync } = await import('node:fs');
  return ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy'].some((p) => existsSync(p))
    ? undefined
    : 'haproxy is not installed (.ci/run installs it with apt-get)';
}

/** Clients writing sequentially through the balancer, following its cookie. */
class BalancedLoad {
  readonly counts: number[] = Array.from({ length: CLIENTS }, () => 0);
  readonly cookies: (string | undefined)[] = Array.from({ length: CLIENTS }, () => undefined);
  /** The node that last answered each client. */
  readonly routes: string[] = Array.from({ length: CLIENTS }, () => '');
  readonly failures: string[] = [];
  readonly broken: string[] = [];
  ok = 0;
  #stopped = false;
  readonly #loops: Promise<void>[] = [];

  constructor(readonly bed: NetBed) {
    for (let c = 0; c < CLIENTS; c++) this.#loops.push(this.#loop(c));
  }

  async #loop(c: number): Promise<void> {
    while (!this.#stopped) {
      const sentAt = Date.now();
      try {
        const res = await this.bed.get(BALANCER, '/app/counter', this.cookies[c], 10_000);
        if (res.status !== 200) throw new Error(`status ${res.status}: ${res.body.slice(0, 80)}`);
        if (res.session !== undefined) this.cookies[c] = res.session;
        const n = countOf(res.body);
        if (n !== this.counts[c]! + 1) this.broken.push(`client ${c}: count ${n} after ${this.counts[c]}`);
        this.counts[c] = n;
        this.routes[c] = /node=(\S+)/.exec(res.body)?.[1] ?? '?';
        this.ok++;
      } catch (err) {
        this.failures.push(`client ${c} (on ${this.routes[c]}) at +${sentAt % 100_000} ms: ${(err as Error).message}`);
      }
      // Light load: a short pause between a client's writes (an event-loop turn, not a wait for a state).
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Waits until every client has written `n` more times. */
  async progress(n: number, what: string, timeoutMs = 15_000): Promise<void> {
    const base = [...this.counts];
    await waitFor(() => this.counts.every((x, i) => x >= base[i]! + n), what, { timeoutMs, intervalMs: 20 });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#loops);
  }
}

describe('bed: rolling restart behind HAProxy', { skip }, () => {
  let bed: NetBed | undefined;
  let load: BalancedLoad | undefined;
  after(async () => {
    await load?.stop();
    await bed?.destroy();
  });

  test('every node SIGTERMed and restarted in turn: 0 failed requests, no session or increment lost', async (t) => {
    const t0 = Date.now();
    bed = await NetBed.create({ nodes: 4, started: 3, membership: 'multicast', send: 'sync' });
    const b = bed;
    const names = b.hosts.map((h) => h.name);
    await b.waitView(b.fullMesh(), 'the full cluster', 15_000);
    const haproxy = await BedHaproxy.start(b, BALANCER);
    load = new BalancedLoad(b);
    await load.progress(3, 'the load to run');

    const steps: string[] = [];
    for (const h of b.hosts) {
      // Sessions the balancer sends to this node when it goes (it must serve some, or nothing is tested).
      const sticky = load.routes.filter((r) => r === h.name).length;
      const from = Date.now();
      const exit = await h.node.stop(30_000);
      const stopped = Date.now();
      assert.deepEqual(exit, { code: 0, signal: null }, `${h.name} stopped by itself, gracefully`);
      await b.restart(h.k);
      await haproxy.waitUp(names, `HAProxy to see ${h.name} up again`);
      await b.waitView(b.fullMesh(), `${h.name} back in the cluster`, 10_000);
      await load.progress(3, `writes to go on after ${h.name} came back`);
      steps.push(`${h.name}: ${sticky} clients on it, stop ${stopped - from} ms, back ${Date.now() - stopped} ms`);
      assert.ok(sticky > 0, `${h.name} served some clients when it was stopped`);
    }
    await load.stop();

    const backend = (await haproxy.stat()).find((r) => r.pxname === 'clowder' && r.svname === 'BACKEND')!;
    const reads: string[] = [];
    for (let c = 0; c < CLIENTS; c++) {
      for (const k of b.hosts.map((h) => h.k)) {
        const n = countOf((await b.get(k, '/app/read', load.cookies[c])).body);
        if (n !== load.counts[c]) reads.push(`client ${c} on h${k}: ${n}, wrote ${load.counts[c]}`);
      }
    }
    t.diagnostic(
      `${load.ok} writes through HAProxy, counts ${load.counts}; HAProxy retries ${backend.wretr}, redispatches ${backend.wredis}; ${steps.join('; ')}; ${Date.now() - t0} ms in all`,
    );
    assert.deepEqual(load.failures, [], 'no request failed behind the balancer');
    assert.deepEqual(load.broken, [], 'every count is the previous + 1');
    assert.equal(`${backend.wretr}/${backend.wredis}`, '0/0', 'HAProxy retried or redispatched no request');
    assert.deepEqual(reads, [], 'every node holds every session at its latest count');
  });
});
