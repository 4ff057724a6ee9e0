/**
 * A long pause: h3 is stopped with SIGSTOP (its sockets stay open, it answers nothing, as in a
 * long GC pause) for longer than dropTime. h1 and h2 remove it; resumed with SIGCONT it rejoins
 * and serves again. (Fencing of writes it held and the merge of sessions after the pause are the
 * rejoin work of issue 21.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { bedUnavailable, countOf, NetBed } from '../helpers/netbed.js';
import { waitFor } from '../helpers/wait.js';

const skip = await bedUnavailable([]);
const DROP = 2000;

describe('bed: a node paused longer than dropTime', { skip }, () => {
  let bed: NetBed | undefined;
  before(async () => {
    bed = await NetBed.create({ nodes: 3, membership: 'multicast', dropTimeMs: DROP });
  });
  after(async () => {
    await bed?.destroy();
  });

  test('is removed by the others, and rejoins when resumed', async (t) => {
    const t0 = Date.now();
    const b = bed!;
    await b.waitView(b.fullMesh(), 'the full cluster', 15_000);
    const cookie = (await b.get(1, '/app/counter')).session!;
    await waitFor(async () => countOf((await b.get(3, '/app/read', cookie)).body) === 1, 'h3 to hold the session', {
      timeoutMs: 5_000,
      intervalMs: 20,
    });

    const pausedAt = Date.now();
    b.pause(3);
    let resumedAt = 0;
    try {
      const removed = await b.waitView({ 1: [2], 2: [1] }, 'h1 and h2 to remove the paused h3', 5 * DROP);
      // The others keep serving the session while h3 is away.
      assert.equal(countOf((await b.get(2, '/app/counter', cookie)).body), 2);
      // The failure detector removes it well within dropTime: keep it paused past dropTime anyway
      // (a long pause is what this test is about: h3's own view of the others expires too).
      await waitFor(() => Date.now() - pausedAt > DROP, 'the pause to outlast dropTime', {
        timeoutMs: 2 * DROP,
        intervalMs: 20,
      });
      resumedAt = Date.now();
      assert.ok(resumedAt - pausedAt > DROP, 'paused longer than dropTime');
      b.resume(3);
      t.diagnostic(
        `paused h3 removed by h1 and h2 after ${removed} ms (dropTime ${DROP}); resumed after ${resumedAt - pausedAt} ms`,
      );
    } finally {
      b.resume(3);
    }
    const rejoined = await b.waitView(b.fullMesh(), 'h3 to rejoin', 5 * DROP);
    assert.ok(b.host(3).node.running, 'h3 survived the pause');
    // Serving again after the pause: a new session on h3 reaches h1.
    const fresh = (await b.get(3, '/app/counter')).session!;
    await waitFor(async () => countOf((await b.get(1, '/app/read', fresh)).body) === 1, 'h1 to read h3’s new session', {
      timeoutMs: 5_000,
      intervalMs: 20,
    });
    t.diagnostic(`membership whole ${rejoined} ms after SIGCONT; test took ${Date.now() - t0} ms`);
  });
});
