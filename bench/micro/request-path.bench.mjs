// Micro benchmark of the session layer's work per request, without sockets or node:http: what
// clowder does for one `/app/counter` request of the shared workload (find the session from the
// cookie, begin, read and set `count`, set a 1 KiB `payload`, read `id`, end/replicate) beside the
// same work done by the hand-written Map session server of bench/compare (servers/map.mjs).
// The difference is what clowder's session layer costs over the ceiling, per request, in JS.
//
//   npm run build && node bench/micro/request-path.bench.mjs
//
// Rows: map (the ceiling), clowder-off (one node, no members: nothing travels), clowder-async
// (the same node with one peer serving /app: every request's delta is encoded, framed and written
// to a real loopback socket; the peer is a bare channel in a child process that reads and drops
// each message, so this row is the sending node's whole cost of asynchronous replication: JS and
// its write syscalls). 1000 sessions, requests round-robin over them, 32 per event-loop turn (the
// turn ends with a setImmediate, where the channel writes its batch; about what one turn of a
// node under wrk -c64 serves). Each row is warmed up and measured in 7 rounds of BENCH_ROUND_MS
// (default 200 ms), the rows side by side in each round; the table gives the median ns per
// request and the ratio.
// BENCH_ALLOC=1 also runs each row for 1 s under V8's sampling heap profiler and prints the bytes
// it allocates per request (collected objects included): what the row costs the garbage collector.
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { RequestSession } from '../../dist/http/request-session.js';
import { median } from '../lib/stats.mjs';
import { cookieSessionId, payloadOf, standaloneSessions } from '../lib/workload.mjs';

if (process.argv[2] === 'sink') {
  // The peer: a bare channel member serving /app that reads and drops every message. It never
  // answers the node's state-transfer request: the node starts cold after its shortest timeout.
  const { createChannel, silentLogger } = await import('../../dist/index.js');
  const { Msg } = await import('../../dist/session/messages.js');
  const ch = createChannel(
    {
      name: 'sink',
      receiver: { address: '127.0.0.1', port: 0 },
      membership: { type: 'static', members: ['127.0.0.1:1'] },
    },
    { logger: silentLogger },
  );
  ch.setPayload({ contexts: ['/app'] });
  let messages = 0;
  // Counts session messages, those inside a batch one by one (decoding them: the receiving side's share).
  ch.onMessage(
    (msg) => {
      const m = msg.value;
      messages += m[0] === Msg.BATCH ? m[2].length : 1;
    },
    { borrow: true },
  );
  await ch.start();
  process.on('message', (m) => {
    if (m === 'count') process.send({ messages });
  });
  process.on('disconnect', () => void ch.stop().finally(() => process.exit(0)));
  process.send({ port: ch.local.port });
  await new Promise(() => {});
}

const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 200);
const ROUNDS = 7;
const SESSIONS = 1000;
const URL = '/counter?payload=1024';

// ---- the Map session server's request work (servers/map.mjs, kept in step with it) -------------
const mapSessions = new Map();
const mapCookies = [];
for (let i = 0; i < SESSIONS; i++) {
  const id = randomBytes(16).toString('hex');
  mapSessions.set(id, { id, count: 0, payload: '', maxInactiveMs: 1_800_000, lastAccess: Date.now() });
  mapCookies.push(`JSESSIONID=${id}.n1`);
}
let mapNext = 0;
function mapRequest() {
  const now = Date.now();
  const s = mapSessions.get(cookieSessionId(mapCookies[mapNext++ % SESSIONS]));
  if (now - s.lastAccess > s.maxInactiveMs) throw new Error('expired');
  s.lastAccess = now;
  const count = s.count + 1;
  s.count = count;
  s.payload = payloadOf(count, 1024);
  return `count=${count} node=n1 id=${s.id}.n1\n`;
}

// ---- clowder: the same request through RequestSession and req.session --------------------------
/** The parts of IncomingMessage / ServerResponse the session layer touches. */
const res = { headersSent: false, getHeader: () => undefined, setHeader: () => {} };
const req = { headers: { cookie: '' }, url: URL, socket: {} };

/** SESSIONS counter sessions on `manager` (count 0, empty payload), and their cookies. */
function counterSessions(manager) {
  const cookies = [];
  for (let i = 0; i < SESSIONS; i++) {
    const s = manager.createSession();
    manager.requestStarted(s);
    s.setAttribute('count', 0);
    s.setAttribute('payload', '');
    manager.requestCompleted(s);
    cookies.push(`JSESSIONID=${s.id}.n1`);
  }
  return cookies;
}

/** One `/app/counter` request on `manager`, round-robin over `cookies`; `served()` counts them. */
function counterRequests(manager, cookies) {
  let next = 0;
  const request = () => {
    req.headers.cookie = cookies[next++ % SESSIONS];
    const rs = new RequestSession(manager, manager.config, req, res, '/app/counter');
    const session = rs.handle();
    const count = (session.count ?? 0) + 1;
    session.count = count;
    session.payload = payloadOf(count, 1024);
    const body = `count=${count} node=n1 id=${session.id}\n`;
    rs.finish();
    return body;
  };
  return { request, served: () => next };
}

const cluster = await standaloneSessions('n1');
const clowder = counterRequests(cluster.manager, counterSessions(cluster.manager));

// ---- clowder-async: a second node, the same requests, replicated to the sink peer ---------------
const sink = fork(fileURLToPath(import.meta.url), ['sink'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const fromSink = () => new Promise((resolve) => sink.once('message', resolve));
process.on('exit', () => sink.kill()); // also when a step below throws
const { port: sinkPort } = await fromSink();
const { createSessions, silentLogger } = await import('../../dist/index.js');
const replicating = createSessions(
  {
    channel: {
      name: 'n1',
      receiver: { address: '127.0.0.1', port: 0 },
      membership: { type: 'static', members: [`127.0.0.1:${sinkPort}`] },
    },
    sessions: { contextPath: '/app', stateTransferTimeoutMs: 100 },
  },
  { logger: silentLogger },
);
await replicating.start();
const deadline = Date.now() + 10_000;
while (replicating.manager.hub.membersFor('/app').length !== 1) {
  if (Date.now() > deadline) throw new Error('the sink peer did not become a member serving /app within 10 s');
  await new Promise((r) => setTimeout(r, 10));
}
const asyncCookies = counterSessions(replicating.manager);
// The creations go out at the end of this turn: a request on one of these sessions in the same
// turn would travel inside its CREATED message (one message for both), and the count below be off.
await new Promise((r) => setImmediate(r));
const replicated = counterRequests(replicating.manager, asyncCookies);

const PER_TURN = Number(process.env.BENCH_PER_TURN ?? 32);
const nextTurn = () => new Promise((r) => setImmediate(r));
async function runFor(fn, ms) {
  const deadline = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
  let ops = 0;
  const start = process.hrtime.bigint();
  for (;;) {
    for (let i = 0; i < PER_TURN; i++) fn();
    ops += PER_TURN;
    await nextTurn();
    const now = process.hrtime.bigint();
    if (now >= deadline) return Number(now - start) / ops;
  }
}

const only = process.env.BENCH_ROWS?.split(','); // e.g. BENCH_ROWS=clowder-async to profile one row
const rows = [
  ['map', mapRequest],
  ['clowder-off', clowder.request],
  ['clowder-async', replicated.request],
].filter(([name]) => only === undefined || only.includes(name));
const ns = new Map(rows.map(([name]) => [name, []]));
for (const [, fn] of rows) await runFor(fn, 500); // warm-up
for (let r = 0; r < ROUNDS; r++) for (const [name, fn] of rows) ns.get(name).push(await runFor(fn, ROUND_MS));
// Bytes allocated per request (V8's sampling heap profiler, objects already collected included):
// what the row costs the garbage collector, a steadier figure than the timings on a shared machine.
const allocated = new Map();
if (process.env.BENCH_ALLOC === '1') {
  const { Session } = await import('node:inspector/promises');
  const inspector = new Session();
  inspector.connect();
  await inspector.post('HeapProfiler.enable');
  const sumSelf = (node) => node.selfSize + node.children.reduce((a, c) => a + sumSelf(c), 0);
  for (const [name, fn] of rows) {
    await inspector.post('HeapProfiler.startSampling', {
      samplingInterval: 128,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    const before = replicated.served() + clowder.served() + mapNext;
    await runFor(fn, 1000);
    const n = replicated.served() + clowder.served() + mapNext - before;
    const { profile } = await inspector.post('HeapProfiler.stopSampling');
    allocated.set(name, sumSelf(profile.head) / n);
  }
  inspector.disconnect();
}
const base = median(ns.get(rows[0][0]));
console.log(
  `row            ns/request  x ${rows[0][0]}  rounds${allocated.size > 0 ? '  (bytes allocated/request)' : ''}`,
);
for (const [name] of rows) {
  const m = median(ns.get(name));
  console.log(
    `${name.padEnd(13)} ${m.toFixed(0).padStart(11)}  ${(m / base).toFixed(2).padStart(5)}  ${ns
      .get(name)
      .map((x) => x.toFixed(0))
      .join(' / ')}${allocated.has(name) ? `  (${allocated.get(name).toFixed(0)} B)` : ''}`,
  );
}
// Every request replicated (plus the sessions' creation and the node's state-transfer request):
// the peer must have had them all.
const sent = SESSIONS + replicated.served() + 1;
let messages = 0;
for (const until = Date.now() + 10_000; messages < sent && Date.now() < until; ) {
  sink.send('count');
  ({ messages } = await fromSink());
  if (messages < sent) await new Promise((r) => setTimeout(r, 20));
}
if (messages !== sent) console.log(`WARNING: the peer received ${messages} messages, ${sent} were sent`);
await Promise.all([cluster.stop(), replicating.stop()]);
sink.disconnect();
