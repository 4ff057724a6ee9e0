/**
 * The drain of `ClusterNode.stop()` for library users: `stop({ drainMs })` overrides
 * `http.drainMs`; while draining, readiness is 503 ("draining"), `stats().draining` is true and the
 * node still serves, every answer with `Connection: close`; `stop({ drainMs: 0 })` ends a drain
 * under way at once; bad values are config errors naming the key. (The CLI path, SIGTERM under
 * load: test/e2e/drain.test.ts.)
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, describe, test } from 'node:test';
import { createClusterNode } from '../../src/node/cluster-node.js';
import { portOf, stopAll, TestCluster } from '../helpers/http.js';
import { request } from '../helpers/request.js';
import { waitFor } from '../helpers/wait.js';

const APP = (req: IncomingMessage, res: ServerResponse) => res.end(`app ${req.url}\n`);

describe('ClusterNode.stop({ drainMs })', () => {
  const clusters: TestCluster[] = [];
  after(() => stopAll(...clusters));

  test('drains: readiness 503 and Connection: close while serving; { drainMs: 0 } ends it', async () => {
    const cluster = new TestCluster({ apps: [{ path: '/', app: APP }] });
    clusters.push(cluster);
    // The config's drain is off (the test cluster's default): the stop call's own drain applies.
    const node = await cluster.add('a');
    const port = portOf(node);
    const keepAlive = { headers: { connection: 'keep-alive' } };
    const before = await request(port, '/x', keepAlive);
    assert.equal(before.headers.connection, 'keep-alive');
    let stopped = false;
    const stopping = node.stop({ drainMs: 600_000 }).then(() => {
      stopped = true;
    });
    const ready = await request(port, '/_clowder/ready');
    assert.deepEqual([ready.status, ready.body], [503, 'draining\n']);
    const served = await request(port, '/x', keepAlive);
    assert.deepEqual([served.status, served.body, served.headers.connection], [200, 'app /x\n', 'close']);
    assert.equal(node.stats().draining, true);
    assert.equal(node.ready, false);
    assert.equal(stopped, false);
    await node.stop({ drainMs: 0 });
    await stopping;
    await assert.rejects(request(port, '/x'), /ECONNREFUSED/);
  });

  test('the drain of the config applies to stop(), and a stop while starting does not drain', async () => {
    const cluster = new TestCluster({ apps: [{ path: '/', app: APP }] });
    clusters.push(cluster);
    const node = await cluster.add('b', { http: { port: 0, drainMs: 400 } });
    const port = portOf(node);
    const t0 = Date.now();
    const stopping = node.stop();
    assert.equal((await request(port, '/_clowder/ready')).status, 503);
    await stopping;
    assert.ok(Date.now() - t0 >= 400, `stopped after ${Date.now() - t0} ms, before the 400 ms drain`);

    const starting = cluster.create('c', { http: { port: 0, drainMs: 600_000 } });
    const started = starting.start().catch((err: Error) => err);
    await starting.stop();
    await waitFor(async () => (await started) instanceof Error, 'start() to reject');
  });

  test('bad values name the key', async () => {
    assert.throws(
      () => createClusterNode({ apps: [{ path: '/', app: APP }], http: { drainMs: -1 } }),
      /"http\.drainMs" must be milliseconds from 0 to 600000/,
    );
    const cluster = new TestCluster({ apps: [{ path: '/', app: APP }] });
    clusters.push(cluster);
    const node = await cluster.add('d');
    await assert.rejects(node.stop({ drainMs: 1.5 }), /"drainMs" must be milliseconds from 0 to 600000/);
    await node.stop();
  });
});
