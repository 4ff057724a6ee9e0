/**
 * Bed: rolling restart of every node under load (issue 21, "Rolling restart of every node under
 * load"). Three hosts (multicast across the bridge, encrypted, sync replication); six clients,
 * each with its own session cookie and a home node, keep incrementing their counter. Each node in
 * turn is stopped gracefully (SIGTERM) and started again. A client sends each write to its home
 * node and, when that fails, to the next node (it does not know which node is down). Proven: no
 * session lost, no increment lost or doubled (each client's counts go up by exactly 1), and the
 * only failed requests are those sent to a node after its drain (the SIGTERM + http.drainMs,
 * during which it still serves: these clients do not watch readiness as a balancer does) and
 * before its new ready line, each retried on a live node. No request sent before a SIGTERM or
 * during the drain fails (before draining, one sent ~1 ms before the SIGTERM could be closed
 * unanswered).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { DEFAULT_DRAIN_MS } from '../../src/config/node-config.js';
import { bedUnavailable, countOf, NetBed } from '../helpers/netbed.js';
import { WriteLoad } from '../helpers/netbed-load.js';

const skip = await bedUnavailable(['nft']);
const DROP = 2000;
const CLIENTS = 6;
/**
 * A request sent this long before a node's drain ends may still be refused: its connection can
 * wait in the listen backlog on a loaded host when the listener closes.
 */
const DRAIN_EDGE_MS = 500;

describe('bed: rolling restart under load', { skip }, () => {
  let bed: NetBed | undefined;
  let load: WriteLoad | undefined;
  after(async () => {
    await load?.stop();
    await bed?.destroy();
  });

  test('every node stopped (SIGTERM) and started in turn: no session, increment or request lost', async (t) => {
    const t0 = Date.now();
    bed = await NetBed.create({ nodes: 3, membership: 'multicast', dropTimeMs: DROP, send: 'sync' });
    const b = bed;
    const all = [1, 2, 3];
    await b.waitView(b.fullMesh(), 'the full cluster', 15_000);
    load = new WriteLoad(b, CLIENTS, (c) => {
      const home = (c % 3) + 1;
      return [home, ...all.filter((k) => k !== home)];
    });
    await load.progress(3, 'the load to run');

    /** Per node: from just before its SIGTERM to its new ready line. */
    const down = new Map<number, { from: number; to: number }>();
    const times: string[] = [];
    for (const k of all) {
      const from = Date.now();
      await b.stop(k);
      const stopped = Date.now();
      await b.restart(k);
      down.set(k, { from, to: Date.now() });
      await b.waitView(b.fullMesh(), `h${k} back`, 5 * DROP);
      // Every client (those at home on h${k} included) writes again before the next node goes.
      await load.progress(3, `writes to go on after h${k} came back`);
      times.push(`h${k}: stop ${stopped - from} ms, start ${down.get(k)!.to - stopped} ms`);
    }
    await load.stop();

    // Allowed to fail: sent to a node from the end of its drain to its new ready line.
    const outside = load.failures
      .filter((f) => {
        const w = down.get(f.k);
        return w === undefined || f.sentAt < w.from + DEFAULT_DRAIN_MS - DRAIN_EDGE_MS || f.sentAt > w.to;
      })
      .map((f) => {
        const w = down.get(f.k);
        const edge =
          w === undefined
            ? ''
            : f.sentAt < w.from + DEFAULT_DRAIN_MS
              ? `${f.sentAt - w.from} ms after SIGTERM`
              : `${f.sentAt - w.to} ms after ready`;
        return `client ${f.client} → h${f.k} sent ${edge}, failed after ${f.at - f.sentAt} ms: ${f.error}`;
      });
    // No session lost: every node reads every client's latest count.
    const reads: string[] = [];
    for (let c = 0; c < CLIENTS; c++) {
      for (const k of all) {
        const n = countOf((await b.get(k, '/app/read', load.cookies[c])).body);
        if (n !== load.counts[c]) reads.push(`client ${c} on h${k}: ${n}, wrote ${load.counts[c]}`);
      }
    }
    t.diagnostic(
      `${load.ok} writes, counts ${load.counts}; ${load.failures.length} requests failed on a node after its drain, before its new ready line, each retried; ${times.join('; ')}; ${Date.now() - t0} ms in all`,
    );
    assert.deepEqual(outside, [], 'no request failed on a node before its drain ended or once it was ready again');
    assert.deepEqual(load.unanswered, [], 'every write answered by some node');
    assert.deepEqual(load.broken, [], 'every count is the previous + 1');
    assert.deepEqual(reads, [], 'every node holds every session at its latest count');
  });
});
