/**
 * "A restarted node catches up before it serves": while a starting node waits for its state
 * transfer, its HTTP port does not accept connections at all (a balancer's health check sees it
 * down, no client can reach an empty node); once the transfer is done it listens, and its
 * status endpoints say so. In library mode, requests before start() resolved get 503.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { connect } from 'node:net';
import { after, describe, test } from 'node:test';
import { type Channel, type ClusterNode, createChannel, createSessions, silentLogger } from '../../../src/index.js';
import type { StateTransferStats } from '../../../src/session/delta-manager.js';
import { CookieJar, countOf, get, TestCluster } from '../../helpers/http.js';
import { freePorts, isolatedMulticast, waitFor } from '../../helpers/wait.js';

/** Resolves 'refused' or 'accepted' for one TCP connect to 127.0.0.1:port. */
function tryConnect(port: number): Promise<'refused' | 'accepted'> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('accepted');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') resolve('refused');
      else reject(err);
    });
  });
}

function transferOf(node: ClusterNode): StateTransferStats | undefined {
  return node.managers[0]?.stats().stateTransfer as StateTransferStats | undefined;
}

describe('a starting node serves only after its state transfer', () => {
  const cluster = new TestCluster({ sessions: { stateTransferTimeoutMs: 60_000 } });
  let hung: Channel | undefined;
  after(async () => {
    await hung?.stop();
    await cluster.stop();
  });

  test('its HTTP port refuses connections while the donor has not delivered; then it serves the sessions, /ready is 200 and /stats reports the transfer', async () => {
    // The oldest member serves /app but never answers a state request.
    hung = createChannel({ name: 'hung', ...cluster.options('hung').cluster }, { logger: silentLogger });
    hung.setPayload({ contexts: ['/app'] });
    await hung.start();
    // a gives up on the hung donor at once (it has nothing to lose) and makes a session.
    const a = cluster.create('a', { sessions: { stateTransferTimeoutMs: 200 } });
    await a.start();
    cluster.nodes.push(a);
    const jar = new CookieJar();
    assert.equal(countOf((await jar.get(a.address.port, '/app/counter')).body), 1);

    const [port] = await freePorts(1);
    const b = cluster.create('b', { http: { port: port! } });
    const starting = b.start();
    await waitFor(
      () => transferOf(b)?.state === 'transferring' && transferOf(b)?.donor === 'hung',
      'b to ask the hung donor',
    );
    // Tried several times over a few event-loop turns of the waiting node: never reachable.
    for (let i = 0; i < 5; i++) assert.equal(await tryConnect(port!), 'refused', 'nothing listens during the transfer');
    assert.equal(b.ready, false);

    await hung.stop(); // its graceful leave makes b ask the next oldest member, a
    hung = undefined;
    await starting;
    assert.equal(transferOf(b)?.state, 'done');
    assert.equal(transferOf(b)?.donor, 'a');
    assert.equal(countOf((await get(port!, '/app/counter', jar.cookie)).body), 2, "b continues a's session");
    const ready = await get(port!, '/_clowder/ready');
    assert.equal(ready.status, 200);
    assert.equal(ready.body, 'ready\n');
    const stats = await get(port!, '/_clowder/stats');
    assert.equal(stats.status, 200);
    assert.match(String(stats.headers['content-type']), /^application\/json/);
    const body = JSON.parse(stats.body) as {
      node: string;
      ready: boolean;
      channel: { members?: unknown };
      sessions: { stateTransfer: { state: string; sessions: number } }[];
    };
    assert.equal(body.node, 'b');
    assert.equal(body.ready, true);
    assert.equal(typeof body.channel, 'object');
    assert.deepEqual(
      { state: body.sessions[0]?.stateTransfer.state, sessions: body.sessions[0]?.stateTransfer.sessions },
      { state: 'done', sessions: 1 },
    );
  });
});

describe('library mode: a request before start() resolved', () => {
  test('gets 503 with Retry-After, then the application once the node is ready', async () => {
    const { port, domain } = isolatedMulticast();
    const sessions = createSessions(
      {
        channel: { domain, receiver: { port: 0 }, membership: { type: 'multicast', port, frequencyMs: 100 } },
        sessions: { contextPath: '/' },
      },
      { logger: silentLogger },
    );
    const server = http.createServer(
      sessions.handler((req, res) => {
        const s = (req as unknown as { session: Record<string, unknown> }).session;
        s.n = ((s.n as number | undefined) ?? 0) + 1;
        res.end(`n=${String(s.n)}`);
      }),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const httpPort = (server.address() as { port: number }).port;
    try {
      const early = await get(httpPort, '/');
      assert.equal(early.status, 503);
      assert.equal(early.headers['retry-after'], '1');
      assert.deepEqual(early.setCookie, [], 'no session was made for it');
      await sessions.start();
      const res = await get(httpPort, '/');
      assert.equal(res.status, 200);
      assert.equal(res.body, 'n=1');
    } finally {
      await new Promise((r) => server.close(r));
      await sessions.stop();
    }
  });
});
