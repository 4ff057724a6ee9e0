/**
 * "Parallel requests on one node share one live session object": requests of one session that
 * are in flight at the same time on one node see each other's writes at once. The application
 * holds each request until all of them are in flight, so they really overlap; then each
 * increments. With a copy of the session per request, the overlapping increments would be lost.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import {
  CookieJar,
  countOf,
  get,
  managerOf,
  type SessionRequest,
  startPair,
  type TestCluster,
} from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';

const PARTIES = 64;
let inFlight = 0;
let maxInFlight = 0;
let gate = 1;
let waiting: (() => void)[] = [];

/**
 * Increments `count` once `gate` requests are in flight together (a barrier): read and write in
 * one step, no await between them.
 */
async function gatedCounter(req: SessionRequest, res: ServerResponse): Promise<void> {
  const session = req.session as unknown as Record<string, number | undefined>;
  inFlight++;
  maxInFlight = Math.max(maxInFlight, inFlight);
  if (inFlight >= gate) {
    for (const open of waiting) open();
    waiting = [];
  } else await new Promise<void>((r) => waiting.push(r));
  session.count = (session.count ?? 0) + 1;
  const count = session.count;
  inFlight--;
  res.end(`count=${count}`);
}

describe('parallel requests on one session share one live object', () => {
  let cluster: TestCluster;
  let pa: number;
  let pb: number;
  before(async () => {
    ({ cluster, pa, pb } = await startPair({ apps: [{ path: '/app', app: gatedCounter as never }] }));
  });
  after(async () => {
    await cluster?.stop();
  });

  test('64 overlapping requests on A: each sees the others’ increments (counts 2..65), B agrees', async () => {
    const jar = new CookieJar();
    assert.equal(countOf((await jar.get(pa, '/app/')).body), 1);
    maxInFlight = 0;
    gate = PARTIES;
    const results = await Promise.all(Array.from({ length: PARTIES }, () => get(pa, '/app/', jar.cookie)));
    gate = 1;
    assert.equal(maxInFlight, PARTIES, 'all requests were in flight at once');
    const counts = results.map((r) => countOf(r.body)).sort((x, y) => x - y);
    assert.deepEqual(
      counts,
      Array.from({ length: 64 }, (_, i) => i + 2),
      'no increment lost',
    );
    assert.equal(managerOf(cluster.node('a')).sessions.get(jar.id)?.active, 0, 'no request left active');
    await waitFor(
      () => managerOf(cluster.node('b')).sessions.get(jar.id)?.getAttribute('count') === 65,
      'B to hold count=65',
    );
    assert.equal(countOf((await get(pb, '/app/', jar.cookie)).body), 66, 'and B continues from it');
  });
});
