/**
 * README claims about two node HTTP settings: `http.statusPath` moves the status endpoints, and ""
 * turns them off (the request then goes to the applications like any other); a graceful stop waits
 * for requests in flight at most `http.shutdownTimeoutMs`, then closes their connections.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, describe, test } from 'node:test';
import { portOf, RawConnection, stopAll, TestCluster } from '../helpers/http.js';
import { request } from '../helpers/request.js';
import { waitFor } from '../helpers/wait.js';

/** An application that answers `app <url>`, except /hang, which never answers. */
const APP = (req: IncomingMessage, res: ServerResponse) => {
  if (req.url === '/hang') {
    hanging++;
    return;
  }
  res.end(`app ${req.url}\n`);
};
let hanging = 0;

describe('http.statusPath', () => {
  const clusters: TestCluster[] = [];
  after(() => stopAll(...clusters));

  async function node(statusPath: string) {
    const cluster = new TestCluster({ apps: [{ path: '/', app: APP }] });
    clusters.push(cluster);
    return cluster.add('a', { http: { port: 0, statusPath } });
  }

  test('a custom prefix serves ready and stats there, and /_clowder goes to the application', async () => {
    const port = portOf(await node('/_status'));
    const ready = await request(port, '/_status/ready');
    assert.deepEqual([ready.status, ready.body], [200, 'ready\n']);
    const stats = await request(port, '/_status/stats');
    assert.equal(stats.status, 200);
    assert.equal(JSON.parse(stats.body).node, 'a');
    assert.equal((await request(port, '/_clowder/ready')).body, 'app /_clowder/ready\n');
  });

  test('"" turns the endpoints off: the path goes to the application', async () => {
    const port = portOf(await node(''));
    const ready = await request(port, '/_clowder/ready');
    assert.deepEqual([ready.status, ready.body], [200, 'app /_clowder/ready\n']);
    assert.equal((await request(port, '/_clowder/stats')).body, 'app /_clowder/stats\n');
  });
});

describe('http.shutdownTimeoutMs', () => {
  test('stop() waits for a request in flight at most that long, then closes its connection', async (t) => {
    const cluster = new TestCluster({ apps: [{ path: '/', app: APP }] });
    let conn: RawConnection | undefined;
    try {
      // The request never ends: stop() returning at all shows the bound; not before 300 ms shows
      // that it waited for the request in flight.
      const a = await cluster.add('a', { http: { port: 0, shutdownTimeoutMs: 300 } });
      const before = hanging;
      // A raw connection: no client timeout of its own ends the request for the node.
      conn = await RawConnection.open(portOf(a));
      let closed = false;
      conn.socket.on('close', () => {
        closed = true;
      });
      conn.send('/hang');
      await waitFor(() => hanging > before, 'the request to reach the application');
      const t0 = performance.now();
      await a.stop(); // without the bound it would wait for ever (the test would time out)
      const took = performance.now() - t0;
      t.diagnostic(`stop() took ${took.toFixed(0)} ms`);
      assert.ok(took >= 290, `stop() returned after ${took.toFixed(0)} ms: it did not wait for the request in flight`);
      await waitFor(() => closed, 'the connection of the request that never ends to be closed');
    } finally {
      conn?.close();
      await cluster.stop();
    }
  });
});
