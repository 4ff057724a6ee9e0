/**
 * The status endpoints (`/_clowder/ready`, `/_clowder/stats`) behind a reverse proxy: on the same
 * host every proxied request comes from 127.0.0.1, so a request that carries a forwarding header
 * counts as remote and is refused (403, counted, nothing of the stats in the body); the admin
 * token (`Authorization: Bearer`) opens them to any client, and a wrong token is refused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ClusterNode } from '../../src/index.js';
import { portOf, startNodes, type TestCluster } from '../helpers/http.js';
import { request } from '../helpers/request.js';

const TOKEN = 'Zm9vYmFyYmF6cXV4LXRlc3QtYWRtaW4tdG9rZW4tMDEyMzQ1Njc4OQ==';

/** What a proxy on this host adds, and what a client can write to look like one. */
const FORWARDED: Record<string, string>[] = [
  { 'X-Forwarded-For': '203.0.113.9' },
  { 'X-Forwarded-For': '127.0.0.1' },
  { Forwarded: 'for=203.0.113.9;proto=https' },
  { 'X-Real-IP': '203.0.113.9' },
  { 'X-Forwarded-Host': 'example.com', 'X-Forwarded-Proto': 'https' },
  { Via: '1.1 proxy' },
];

function refusedCount(node: ClusterNode): number {
  return (node.stats().http as { statusRefused: number }).statusRefused;
}

function assertRefused(res: { status: number; body: string }, what: string): void {
  assert.equal(res.status, 403, `${what}: ${res.body}`);
  assert.match(res.body, /^forbidden: /, what);
  assert.doesNotMatch(res.body, /"channel"|"sessions"|inFlight|^ready/, `${what}: no status in the body`);
}

describe('status endpoints: forwarded requests and the admin token', () => {
  let cluster: TestCluster;
  let a: ClusterNode; // no admin token
  let b: ClusterNode; // http.adminToken
  before(async () => {
    cluster = await startNodes(2, {
      perNode: (i) => (i === 1 ? { http: { port: 0, adminToken: TOKEN } } : {}),
    });
    a = cluster.node('a');
    b = cluster.node('b');
  });
  after(async () => {
    await cluster?.stop();
  });

  test('a loopback client that no proxy forwarded reads ready and stats', async () => {
    for (const node of [a, b]) {
      const ready = await request(portOf(node), '/_clowder/ready');
      assert.equal(ready.status, 200);
      assert.equal(ready.body, 'ready\n');
      const stats = await request(portOf(node), '/_clowder/stats');
      assert.equal(stats.status, 200);
      assert.equal(JSON.parse(stats.body).node, node.name);
      assert.equal(stats.headers['cache-control'], 'no-store');
    }
  });

  test('a request from loopback with X-Forwarded-For, Forwarded or another proxy header is refused, and counted', async () => {
    for (const node of [a, b]) {
      const before = refusedCount(node);
      for (const headers of FORWARDED) {
        for (const path of ['/_clowder/ready', '/_clowder/stats']) {
          assertRefused(
            await request(portOf(node), path, { headers }),
            `${node.name} ${path} ${JSON.stringify(headers)}`,
          );
        }
      }
      assert.equal(refusedCount(node), before + FORWARDED.length * 2);
    }
  });

  test('without a configured token, a bearer token opens nothing', async () => {
    const res = await request(portOf(a), '/_clowder/stats', {
      headers: { 'X-Forwarded-For': '203.0.113.9', Authorization: `Bearer ${TOKEN}` },
    });
    assertRefused(res, 'no adminToken on a');
  });

  test('the admin token opens the endpoints to a forwarded (remote) client', async () => {
    for (const headers of FORWARDED) {
      const stats = await request(portOf(b), '/_clowder/stats', {
        headers: { ...headers, Authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(stats.status, 200, JSON.stringify(headers));
      assert.equal(JSON.parse(stats.body).node, 'b');
    }
    const ready = await request(portOf(b), '/_clowder/ready', {
      headers: { 'X-Forwarded-For': '203.0.113.9', Authorization: `bearer  ${TOKEN}` },
    });
    assert.equal(ready.status, 200, 'the scheme is case-insensitive');
    assert.equal(ready.body, 'ready\n');
  });

  test('a wrong token is refused, whatever its length or how much of it is right, from loopback too', async () => {
    const wrong = [
      TOKEN.slice(0, -1), // a prefix
      `${TOKEN}x`, // longer, with the right prefix
      `${TOKEN.slice(0, -3)}A==`, // same length, last character differs
      `x${TOKEN.slice(1)}`, // same length, first character differs
      'short',
      'a'.repeat(4000),
    ];
    const before = refusedCount(b);
    let refused = 0;
    for (const token of wrong) {
      for (const headers of [{ 'X-Forwarded-For': '203.0.113.9' }, {}]) {
        const res = await request(portOf(b), '/_clowder/stats', {
          headers: { ...headers, Authorization: `Bearer ${token}` },
        });
        assertRefused(res, `token ${token.slice(0, 12)}… (${token.length} chars) ${JSON.stringify(headers)}`);
        refused++;
      }
    }
    // Not a bearer token: the token itself without the scheme, or Basic.
    for (const auth of [TOKEN, `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`, 'Bearer']) {
      const res = await request(portOf(b), '/_clowder/stats', {
        headers: { 'X-Forwarded-For': '203.0.113.9', Authorization: auth },
      });
      assertRefused(res, `Authorization: ${auth.slice(0, 12)}…`);
      refused++;
    }
    assert.equal(refusedCount(b), before + refused);
  });

  test('paths under the prefix that are not status endpoints go to the application', async () => {
    const res = await request(portOf(a), '/_clowder/other', { headers: { 'X-Forwarded-For': '203.0.113.9' } });
    assert.equal(res.status, 404, 'the application (none mounted at /) answers, not the status handler');
    assert.doesNotMatch(res.body, /forbidden/);
  });
});
