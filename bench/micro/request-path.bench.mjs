// Micro benchmark of the session layer's work per request, without sockets or node:http: what
// clowder does for one `/app/counter` request of the shared workload (find the session from the
// cookie, begin, read and set `count`, set a 1 KiB `payload`, read `id`, end/replicate) beside the
// same work done by the hand-written Map session server of bench/compare (servers/map.mjs).
// The difference is what clowder's session layer costs over the ceiling, per request, in JS.
//
//   npm run build && node bench/micro/request-path.bench.mjs
//
// Rows: map (the ceiling), clowder-off (one node, no members: nothing travels). 1000 sessions,
// requests round-robin over them. Each row is warmed up and measured in 7 rounds of
// BENCH_ROUND_MS (default 200 ms); the table gives the median ns per request and the ratio.
import { randomBytes } from 'node:crypto';
import { RequestSession } from '../../dist/http/request-session.js';
import { median } from '../lib/stats.mjs';
import { cookieSessionId, payloadOf, standaloneSessions } from '../lib/workload.mjs';

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
const cluster = await standaloneSessions('n1');
const manager = cluster.manager;
const clowderCookies = [];
for (let i = 0; i < SESSIONS; i++) {
  const s = manager.createSession();
  manager.requestStarted(s);
  s.setAttribute('count', 0);
  s.setAttribute('payload', '');
  manager.requestCompleted(s);
  clowderCookies.push(`JSESSIONID=${s.id}.n1`);
}
/** The parts of IncomingMessage / ServerResponse the session layer touches. */
const res = { headersSent: false, getHeader: () => undefined, setHeader: () => {} };
const req = { headers: { cookie: '' }, url: URL, socket: {} };
let clowderNext = 0;
function clowderRequest() {
  req.headers.cookie = clowderCookies[clowderNext++ % SESSIONS];
  const rs = new RequestSession(manager, manager.config, req, res, '/app/counter');
  const session = rs.handle();
  const count = (session.count ?? 0) + 1;
  session.count = count;
  session.payload = payloadOf(count, 1024);
  const body = `count=${count} node=n1 id=${session.id}\n`;
  rs.finish();
  return body;
}

function runFor(fn, ms) {
  const deadline = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
  let ops = 0;
  const start = process.hrtime.bigint();
  for (;;) {
    for (let i = 0; i < 256; i++) fn();
    ops += 256;
    const now = process.hrtime.bigint();
    if (now >= deadline) return Number(now - start) / ops;
  }
}

const rows = [
  ['map', mapRequest],
  ['clowder-off', clowderRequest],
];
const ns = new Map(rows.map(([name]) => [name, []]));
for (const [, fn] of rows) runFor(fn, 500); // warm-up
for (let r = 0; r < ROUNDS; r++) for (const [name, fn] of rows) ns.get(name).push(runFor(fn, ROUND_MS));
const base = median(ns.get('map'));
console.log('row            ns/request  x map  rounds');
for (const [name] of rows) {
  const m = median(ns.get(name));
  console.log(
    `${name.padEnd(13)} ${m.toFixed(0).padStart(11)}  ${(m / base).toFixed(2).padStart(5)}  ${ns
      .get(name)
      .map((x) => x.toFixed(0))
      .join(' / ')}`,
  );
}
await cluster.stop();
