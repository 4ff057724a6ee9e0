/**
 * Bed: rolling restart of every node under load (issue 21, "Rolling restart of every node under
 * load"). Three hosts (multicast across the bridge, encrypted, sync replication); six clients,
 * each with its own session cookie and a home node, keep incrementing their counter. Each node in
 * turn is stopped gracefully (SIGTERM) and started again. A client sends each write to its home
 * node and, when that fails, to the next node (it does not know which node is down). Proven: no
 * session lost, no increment lost or doubled (each client's counts go up by exactly 1), and the
 * only failed requests are those sent to a node between its SIGTERM and its new ready line, or
 * unread when the SIGTERM came (closed unanswered by the graceful stop: counted, see `raced`),
 * each retried on a live node.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { bedUnavailable, countOf, NetBed } from '../helpers/netbed.js';
import { type LoadFailure, WriteLoad } from '../helpers/netbed-load.js';

const skip = await bedUnavailable(['nft']);
const DROP = 2000;
const CLIENTS = 6;
/** A request sent this close before the SIGTERM raced it (see `raced` below). */
const RACE_MS = 50;

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

    // A request sent just before the SIGTERM can reach the node on a connection it has accepted
    // but not read yet: the graceful stop (server.close → closeIdleConnections) closes it with no
    // answer (hang-up/reset, never an HTTP status; the app never saw it). Counted and reported (a
    // product limitation without draining, see the report), retried like any other failure;
    // `broken` below proves none was processed.
    const raced = (f: LoadFailure) => {
      const w = down.get(f.k);
      return w !== undefined && f.sentAt < w.from && w.from - f.sentAt <= RACE_MS && !f.error.startsWith('status');
    };
    const outside = load.failures
      .filter((f) => {
        const w = down.get(f.k);
        return !raced(f) && (w === undefined || f.sentAt < w.from || f.sentAt > w.to);
      })
      .map((f) => {
        const w = down.get(f.k);
        const edge =
          w === undefined
            ? ''
            : f.sentAt < w.from
              ? `${w.from - f.sentAt} ms before SIGTERM`
              : `${f.sentAt - w.to} ms after ready`;
        return `client ${f.client} → h${f.k} sent ${edge}, failed after ${f.at - f.sentAt} ms: ${f.error}`;
      });
    const racedCount = load.failures.filter(raced).length;
    // No session lost: every node reads every client's latest count.
    const reads: string[] = [];
    for (let c = 0; c < CLIENTS; c++) {
      for (const k of all) {
        const n = countOf((await b.get(k, '/app/read', load.cookies[c])).body);
        if (n !== load.counts[c]) reads.push(`client ${c} on h${k}: ${n}, wrote ${load.counts[c]}`);
      }
    }
    t.diagnostic(
      `${load.ok} writes, counts ${load.counts}; ${load.failures.length} requests failed on a node being restarted (${racedCount} of them sent < ${RACE_MS} ms before its SIGTERM), each retried; ${times.join('; ')}; ${Date.now() - t0} ms in all`,
    );
    assert.deepEqual(outside, [], 'no request failed on a node outside its restart');
    assert.deepEqual(load.unanswered, [], 'every write answered by some node');
    assert.deepEqual(load.broken, [], 'every count is the previous + 1');
    assert.deepEqual(reads, [], 'every node holds every session at its latest count');
  });
});
