/**
 * sessions.serialize: the requests of one session run one at a time across the cluster, so a
 * handler that awaits between reading the session and writing it back loses no update.
 *
 * Three nodes on loopback, no sticky routing: every request goes to the node the test picks. The
 * application does an async read-modify-write of `count`. Between the read and the write it waits
 * for a *partner* (another request of the session between its read and its write, anywhere in the
 * cluster: the nodes share this process) or for `partnerWaitMs`. So without serialization two
 * requests of one session sent together to one node both read before either writes: an increment
 * is lost for certain, not by chance (the partner wait there is 10 s, never reached). With it, the
 * partner never comes (at most one request of the session is between read and write at any time:
 * asserted), and every increment counts.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { DeltaManager } from '../../../src/session/delta-manager.js';
import {
  CookieJar,
  countOf,
  get,
  type HttpResponse,
  managerOf,
  portOf,
  RawConnection,
  type SessionRequest,
  startNodes,
  type TestCluster,
} from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';

/** One application's test state (the nodes run in this process and share it). */
class AppState {
  /** Requests between their read and their write of `count`, now and at most. */
  inside = 0;
  maxInside = 0;
  /** Read-modify-write handlers that ran. */
  runs = 0;
  /** How long a request waits for a partner between its read and its write. */
  partnerWaitMs = 15;
  #partnerWaiting: (() => void)[] = [];
  /** /hold requests waiting on their node's gate, and the gates by node name (jvmRoute). */
  holding = 0;
  readonly #gates = new Map<string, { promise: Promise<void>; open: () => void }>();

  /** /hold requests on these nodes (default all) wait until openGate. */
  closeGate(...nodes: string[]): void {
    for (const node of nodes.length === 0 ? ['a', 'b', 'c'] : nodes) {
      let open!: () => void;
      const promise = new Promise<void>((r) => {
        open = r;
      });
      this.#gates.set(node, { promise, open });
    }
  }
  openGate(...nodes: string[]): void {
    for (const node of nodes.length === 0 ? [...this.#gates.keys()] : nodes) {
      this.#gates.get(node)?.open();
      this.#gates.delete(node);
    }
  }

  readonly app = async (req: SessionRequest, res: ServerResponse): Promise<void> => {
    const session = req.session as unknown as Record<string, number | undefined>;
    const path = req.url ?? '/';
    if (path.startsWith('/read') || path.startsWith('/get')) {
      res.end(`count=${session.count ?? 0} node=${req.jvmRoute}`);
      return;
    }
    if (path.startsWith('/hold')) {
      this.holding++;
      await this.#gates.get(req.jvmRoute)?.promise;
      this.holding--;
      session.held = (session.held ?? 0) + 1;
      res.end(`held node=${req.jvmRoute}`);
      return;
    }
    this.runs++;
    const n = session.count ?? 0;
    this.inside++;
    this.maxInside = Math.max(this.maxInside, this.inside);
    if (this.inside >= 2) {
      for (const wake of this.#partnerWaiting) wake();
      this.#partnerWaiting = [];
    } else await this.#partner();
    session.count = n + 1;
    this.inside--;
    res.end(`count=${n + 1} node=${req.jvmRoute}`);
  };

  /** Resolves when another request is between its read and its write, or after partnerWaitMs. */
  #partner(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.partnerWaitMs);
      const waiting = this.#partnerWaiting;
      function done(): void {
        clearTimeout(timer);
        const i = waiting.indexOf(done);
        if (i >= 0) waiting.splice(i, 1);
        resolve();
      }
      waiting.push(done);
    });
  }
}

const plain = new AppState();
const ser = new AppState();
const short = new AppState();
const pattern = new AppState();
const fair = new AppState();
const FAIR = 4;
const FAIR_OWNERSHIP_TIMEOUT_MS = 1000;
/** Index of each application in a node's managers. */
const SER = 1;
const SHORT = 2;
const SHORT_TIMEOUT_MS = 1500;

describe('sessions.serialize over three nodes (no sticky routing)', () => {
  let cluster: TestCluster;
  let ports: number[];
  const managers = (app: number): DeltaManager[] => cluster.nodes.map((n) => managerOf(n, app));
  const sum = (app: number, key: string): number =>
    managers(app).reduce((total, m) => total + ((m.stats() as unknown as Record<string, number>)[key] as number), 0);

  before(async () => {
    cluster = await startNodes(3, {
      apps: [
        { path: '/plain', app: plain.app as never },
        { path: '/ser', app: ser.app as never, sessions: { serialize: true, readOnlyFilter: '^/ser/read' } },
        {
          path: '/short',
          app: short.app as never,
          sessions: { serialize: true, serializeTimeoutMs: SHORT_TIMEOUT_MS, serializeQueueLimit: 2 },
        },
        { path: '/pat', app: pattern.app as never, sessions: { serialize: '^/pat/(rmw|hold)' } },
        {
          path: '/fair',
          app: fair.app as never,
          sessions: { serialize: true, ownershipTimeoutMs: FAIR_OWNERSHIP_TIMEOUT_MS },
        },
      ],
    });
    ports = cluster.nodes.map(portOf);
  });
  after(async () => {
    await cluster?.stop();
  });

  /** Fires `n` requests of the jar's session at once, request i to node i % 3; every response. */
  function blast(jar: CookieJar, path: string, n: number, nodes = [0, 1, 2]): Promise<HttpResponse[]> {
    return Promise.all(Array.from({ length: n }, (_, i) => get(ports[nodes[i % nodes.length]!]!, path, jar.cookie)));
  }

  /** Nothing of a session's serialization is left behind on any node. */
  function assertNothingLeft(app: number, id: string): void {
    for (const m of managers(app)) {
      assert.equal(m.serializer.waiting, 0, 'no wait left');
      const s = m.sessions.get(id);
      assert.equal(s?.serialHeld, false, 'the lock is free');
      assert.equal(s?.serialQueue, undefined, 'no queue kept');
      assert.equal(s?.active, 0, 'no request left active');
    }
  }

  test('without serialize: pairs of requests sent together to one node lose one increment each, for certain', async () => {
    const jar = new CookieJar();
    assert.equal(countOf((await jar.get(ports[0]!, '/plain/rmw')).body), 1);
    plain.partnerWaitMs = 10_000; // never reached: the pair's other request always comes
    const ROUNDS = 6;
    let ok = 1;
    for (let round = 0; round < ROUNDS; round++) {
      const responses = await blast(jar, '/plain/rmw', 2, [round % 3]);
      ok += responses.filter((r) => r.status === 200).length;
    }
    const final = countOf((await get(ports[0]!, '/plain/get', jar.cookie)).body);
    assert.equal(ok, 1 + 2 * ROUNDS, 'every request was answered 200');
    assert.equal(plain.maxInside, 2, 'two requests of the session were between read and write at once');
    assert.equal(ok - final, ROUNDS, 'each pair lost exactly one increment (the test can see a loss)');
  });

  test('with serialize: 45 concurrent read-modify-writes on one session over three nodes lose nothing', async () => {
    const jar = new CookieJar();
    assert.equal(countOf((await jar.get(ports[0]!, '/ser/rmw')).body), 1);
    const N = 45;
    const responses = await blast(jar, '/ser/rmw', N);
    const ok = responses.filter((r) => r.status === 200);
    assert.equal(ok.length, N, `every request served (statuses ${responses.map((r) => r.status).join(',')})`);
    assert.equal(ser.maxInside, 1, 'never two requests of the session between read and write at once');
    assert.deepEqual(
      ok.map((r) => countOf(r.body)).sort((x, y) => x - y),
      Array.from({ length: N }, (_, i) => i + 2),
      'each request saw the previous one’s write: 0 lost increments',
    );
    const final = countOf((await get(ports[1]!, '/ser/get', jar.cookie)).body);
    assert.equal(final, 1 + ok.length, 'final count == number of 200 responses');
    const served = new Set(ok.map((r) => /node=(\w+)/.exec(r.body)![1]));
    assert.equal(served.size, 3, 'every node served some of them');
    assert.ok(sum(SER, 'serializeWaits') > 0, 'requests did wait for each other');
    assert.ok(sum(SER, 'ownershipMoves') > 0, 'the session moved between nodes');
    for (const key of ['ownershipTimeouts', 'ownershipForced', 'fencedWrites', 'serializeTimeouts', 'conflicts'])
      assert.equal(sum(SER, key), 0, `${key}: the owners handed over in time, no forced take-over`);
    assertNothingLeft(SER, jar.id);
  });

  test('with serialize: the same pairs that lose an increment without it lose none', async () => {
    ser.maxInside = 0;
    const jar = new CookieJar();
    assert.equal(countOf((await jar.get(ports[0]!, '/ser/rmw')).body), 1);
    for (let round = 0; round < 6; round++) {
      const responses = await blast(jar, '/ser/rmw', 2, [round % 3]);
      assert.deepEqual(
        responses.map((r) => r.status),
        [200, 200],
      );
    }
    assert.equal(countOf((await get(ports[2]!, '/ser/get', jar.cookie)).body), 13);
    assert.equal(ser.maxInside, 1);
    assertNothingLeft(SER, jar.id);
  });

  test('a path pattern: matching paths serialize, the others run concurrently', async () => {
    const jar = new CookieJar();
    assert.equal(countOf((await jar.get(ports[0]!, '/pat/rmw')).body), 1);
    pattern.partnerWaitMs = 10_000; // the unserialized pair always meets
    await blast(jar, '/pat/free', 2, [1]);
    assert.equal(pattern.maxInside, 2, '/pat/free does not match: the pair overlapped');
    pattern.maxInside = 0;
    pattern.partnerWaitMs = 15;
    await blast(jar, '/pat/rmw', 6);
    assert.equal(pattern.maxInside, 1, '/pat/rmw matches: one at a time');
  });

  test('read-only paths and new sessions are not blocked while a serialized request holds the session; the next serialized request waits', async () => {
    const jar = new CookieJar();
    assert.equal(countOf((await jar.get(ports[0]!, '/ser/rmw')).body), 1);
    ser.closeGate();
    const hold = get(ports[0]!, '/ser/hold', jar.cookie);
    await waitFor(() => ser.holding === 1, 'the /hold request to hold the session');
    const runs = ser.runs;
    let queuedDone = false;
    const queued = get(ports[0]!, '/ser/rmw', jar.cookie).then((r) => {
      queuedDone = true;
      return r;
    });
    await waitFor(() => managerOf(cluster.nodes[0]!, SER).serializer.waiting === 1, 'the next request to queue');
    // Served while the session is held: reads on the holder and on another node, and a request
    // without a cookie (a new session).
    for (const port of [ports[0]!, ports[1]!]) {
      const read = await get(port, '/ser/read', jar.cookie);
      assert.equal(read.status, 200);
      assert.equal(countOf(read.body), 1);
    }
    const fresh = await get(ports[0]!, '/ser/rmw');
    assert.equal(fresh.status, 200);
    assert.equal(countOf(fresh.body), 1, 'a new session');
    assert.equal(ser.holding, 1, 'all that while the session was held');
    assert.equal(queuedDone, false, 'and the serialized request still waited');
    assert.equal(ser.runs, runs + 1, 'only the new-session request ran');
    ser.openGate();
    assert.equal((await hold).status, 200);
    const next = await queued;
    assert.equal(next.status, 200);
    assert.equal(countOf(next.body), 2, 'it ran after the holder, on its write');
    assertNothingLeft(SER, jar.id);
  });

  test('a request that waits longer than serializeTimeoutMs gets 503 with Retry-After, counted; a full queue refuses at once', async () => {
    const jar = new CookieJar();
    assert.equal(countOf((await jar.get(ports[0]!, '/short/rmw')).body), 1);
    short.closeGate();
    const hold = get(ports[0]!, '/short/hold', jar.cookie);
    await waitFor(() => short.holding === 1, 'the /hold request to hold the session');
    const a = managerOf(cluster.nodes[0]!, SHORT);
    const runs = short.runs;
    const started = performance.now();
    const waiting = [get(ports[0]!, '/short/rmw', jar.cookie), get(ports[0]!, '/short/rmw', jar.cookie)];
    await waitFor(() => a.serializer.waiting === 2, 'two requests to queue (serializeQueueLimit 2)');
    const refused = await get(ports[0]!, '/short/rmw', jar.cookie);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '1');
    assert.match(refused.body, /sessions\.serialize/);
    assert.equal(a.stats().serializeRefused, 1);
    assert.equal(a.serializer.waiting, 2, 'refused at once: the two queued still wait');
    // On another node: it waits for the take-over from node a, which holds the session.
    const remote = get(ports[1]!, '/short/rmw', jar.cookie);
    const timedOut = await Promise.all(waiting);
    assert.deepEqual(
      timedOut.map((r) => r.status),
      [503, 503],
    );
    assert.ok(performance.now() - started >= SHORT_TIMEOUT_MS - 50, 'after the bound');
    for (const r of timedOut) assert.equal(r.headers['retry-after'], '1');
    assert.equal(a.stats().serializeTimeouts, 2);
    const r = await remote;
    assert.equal(r.status, 503, 'the remote request timed out waiting for the hand-over');
    assert.equal(managerOf(cluster.nodes[1]!, SHORT).stats().serializeTimeouts, 1);
    assert.equal(short.runs, runs, 'none of them ran');
    short.openGate();
    assert.equal((await hold).status, 200);
    // The session is as the holder left it, and serves again (from any node).
    const after = await get(ports[1]!, '/short/rmw', jar.cookie);
    assert.equal(after.status, 200);
    assert.equal(countOf(after.body), 2);
    for (const key of ['ownershipTimeouts', 'ownershipForced', 'fencedWrites'])
      assert.equal(sum(SHORT, key), 0, `${key}: the late hand-over was a normal one`);
    assertNothingLeft(SHORT, jar.id);
  });

  test('fair hand-over: a member waiting for the owner goes before its local queue, so a queue longer than ownershipTimeoutMs forces no take-over', async () => {
    const jar = new CookieJar();
    assert.equal(countOf((await jar.get(ports[0]!, '/fair/rmw')).body), 1);
    fair.partnerWaitMs = 400; // 4 queued requests: 1600 ms of work, longer than ownershipTimeoutMs (1000)
    fair.closeGate('a');
    const hold = get(ports[0]!, '/fair/hold', jar.cookie);
    await waitFor(() => fair.holding === 1, 'the /hold request to hold the session');
    const a = managerOf(cluster.nodes[0]!, FAIR);
    const local = Array.from({ length: 4 }, () => get(ports[0]!, '/fair/rmw', jar.cookie));
    await waitFor(() => a.serializer.waiting === 4, 'four requests to queue on a');
    const remote = get(ports[1]!, '/fair/rmw', jar.cookie);
    await waitFor(() => a.sessions.get(jar.id)?.waiters !== undefined, "b's ACQUIRE to wait on a");
    fair.openGate('a');
    assert.equal((await hold).status, 200);
    const r = await remote;
    assert.equal(r.status, 200);
    assert.equal(countOf(r.body), 2, "b's request ran right after the holder, before a's queue");
    const counts = (await Promise.all(local)).map((x) => countOf(x.body));
    assert.deepEqual(counts, [3, 4, 5, 6], "a's queue ran after it, in arrival order");
    for (const key of ['ownershipTimeouts', 'ownershipForced', 'fencedWrites', 'serializeTimeouts'])
      assert.equal(sum(FAIR, key), 0, `${key}: no forced take-over of a live, working owner`);
    assertNothingLeft(FAIR, jar.id);
  });

  test('a member redirected by a hand-over goes before a direct ask at the new owner (no loop to the 16-hop take-over)', async () => {
    const jar = new CookieJar();
    assert.equal(countOf((await jar.get(ports[0]!, '/fair/rmw')).body), 1);
    fair.partnerWaitMs = 15;
    const [a, b] = [managerOf(cluster.nodes[0]!, FAIR), managerOf(cluster.nodes[1]!, FAIR)];
    const waitersOn = (m: DeltaManager) => m.sessions.get(jar.id)?.waiters?.length ?? 0;
    fair.closeGate('a', 'b');
    const holdA = get(ports[0]!, '/fair/hold', jar.cookie);
    await waitFor(() => fair.holding === 1, 'a to hold the session');
    const a1 = get(ports[0]!, '/fair/rmw', jar.cookie);
    await waitFor(() => a.serializer.waiting === 1, "a's next request to queue");
    const holdB = get(ports[1]!, '/fair/hold', jar.cookie);
    await waitFor(() => waitersOn(a) === 1, "b's ACQUIRE to wait on a");
    const c1 = get(ports[2]!, '/fair/rmw', jar.cookie);
    await waitFor(() => waitersOn(a) === 2, "c's ACQUIRE to wait on a");
    // a hands over to b (asked first) and sends c on to b; a's next request asks b directly.
    fair.openGate('a');
    assert.equal((await holdA).status, 200);
    await waitFor(() => fair.holding === 1 && waitersOn(b) === 2, "b to hold it, with c's and a's asks waiting");
    fair.openGate('b');
    assert.equal((await holdB).status, 200);
    assert.equal(countOf((await c1).body), 2, 'c, redirected once, went first');
    assert.equal(countOf((await a1).body), 3, 'then a');
    for (const key of ['ownershipTimeouts', 'ownershipForced', 'fencedWrites']) assert.equal(sum(FAIR, key), 0, key);
    assertNothingLeft(FAIR, jar.id);
  });

  test('a queued request whose client goes away leaves the queue and never runs', async () => {
    const jar = new CookieJar();
    assert.equal(countOf((await jar.get(ports[0]!, '/ser/rmw')).body), 1);
    ser.closeGate();
    const hold = get(ports[0]!, '/ser/hold', jar.cookie);
    await waitFor(() => ser.holding === 1, 'the /hold request to hold the session');
    const a = managerOf(cluster.nodes[0]!, SER);
    const aborted = a.stats().serializeAborted as number;
    const runs = ser.runs;
    const raw = await RawConnection.open(ports[0]!);
    raw.send('/ser/rmw', jar.cookie);
    await waitFor(() => a.serializer.waiting === 1, 'the raw request to queue');
    raw.close();
    await waitFor(() => a.serializer.waiting === 0, 'the aborted request to leave the queue');
    assert.equal(a.stats().serializeAborted, aborted + 1);
    assert.equal(a.sessions.get(jar.id)?.serialQueue, undefined, 'no entry left');
    ser.openGate();
    assert.equal((await hold).status, 200);
    const next = await get(ports[0]!, '/ser/rmw', jar.cookie);
    assert.equal(countOf(next.body), 2, 'the aborted request never ran');
    assert.equal(ser.runs, runs + 1);
    assertNothingLeft(SER, jar.id);
  });
});
