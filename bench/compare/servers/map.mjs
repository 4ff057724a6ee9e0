// Row "map": a hand-written in-memory session layer on node:http — the ceiling for any session
// layer: parse the JSESSIONID cookie, one Map lookup, count += 1 on a shared object, build the
// payload string. Sessions expire after their max inactive interval (checked on access only).
// Row "map-batched" (BENCH_SERVER key batch: true): the same, but every response ends at the end
// of the event-loop turn, together with the turn's others — what clowder's batchResponses does —
// to show how much of a difference that alone makes.
// Row "map-replicated" (keys replPort and peers; bench/lib/map-peers.mjs): every change is also pushed to
// the peers, the turn's frames before the turn's responses (so batched as above), and applied there:
// the replication ceiling, and the floor for clowder's lag probe.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { MapPeers } from '../../lib/map-peers.mjs';
import { cookieSessionId } from '../../lib/workload.mjs';
import {
  COOKIE,
  cfg,
  NAME,
  onCommands,
  payloadBytes,
  payloadOf,
  queryInt,
  recordVisible,
  serveHttp,
  TEXT,
} from './common.mjs';

const sessions = new Map(); // id -> { id, count, payload, maxInactiveMs, lastAccess }
const DEFAULT_MAX_INACTIVE_MS = 1_800_000;
const SUFFIX = `.${NAME}`;
const REPLICATING = (cfg.peers ?? []).length > 0;
const BATCH = cfg.batch === true || REPLICATING;
/** batch: responses (and their bodies) waiting for the end of the turn. */
let held = [];

function endHeld() {
  if (REPLICATING) peers.flush();
  const h = held;
  held = [];
  for (let i = 0; i < h.length; i += 2) h[i].end(h[i + 1]);
}

function find(req, now) {
  const id = cookieSessionId(req.headers.cookie);
  if (id === undefined) return undefined;
  const s = sessions.get(id);
  if (s === undefined) return undefined;
  if (now - s.lastAccess > s.maxInactiveMs) {
    sessions.delete(id);
    return undefined;
  }
  s.lastAccess = now;
  return s;
}

function create(res, now) {
  const id = randomBytes(16).toString('hex');
  const s = { id, count: 0, payload: '', maxInactiveMs: DEFAULT_MAX_INACTIVE_MS, lastAccess: now };
  sessions.set(id, s);
  res.setHeader('Set-Cookie', `${COOKIE}=${id}${SUFFIX}; Path=/app; HttpOnly`);
  return s;
}

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const now = Date.now();
  let body;
  switch (path) {
    case '/app/counter': {
      const s = find(req, now) ?? create(res, now);
      const count = s.count + 1;
      s.count = count;
      s.payload = payloadOf(count, payloadBytes(url));
      if (REPLICATING) peers.push([s.id, count, s.payload, s.maxInactiveMs]);
      body = `count=${count} node=${NAME} id=${s.id}${SUFFIX}\n`;
      break;
    }
    case '/app/read':
      body = `count=${find(req, now)?.count ?? 0} node=${NAME}\n`;
      break;
    case '/app/invalidate': {
      const s = find(req, now);
      if (s) sessions.delete(s.id);
      if (s && REPLICATING) peers.push([s.id, null]);
      body = `invalidated=${s ? 1 : 0} node=${NAME} id=${s ? `${s.id}${SUFFIX}` : '-'}\n`;
      break;
    }
    case '/app/expire-soon': {
      const seconds = queryInt(url, 'seconds', 5);
      const s = find(req, now) ?? create(res, now);
      s.maxInactiveMs = seconds * 1000;
      if (REPLICATING) peers.push([s.id, s.count, s.payload, s.maxInactiveMs]);
      body = `expires-in=${seconds} node=${NAME}\n`;
      break;
    }
    case '/app/health':
      body = REPLICATING ? `ok node=${NAME} peers=${peers.connected}\n` : `ok node=${NAME}\n`;
      break;
    default:
      res.writeHead(404, TEXT).end('not found\n');
      return;
  }
  res.writeHead(200, TEXT);
  if (!BATCH) res.end(body);
  else if (held.push(res, body) === 2) setImmediate(endHeld);
});
// changes: what this server pushed to its peers and applied of theirs (the harness's settle check).
onCommands({ stats: () => ({ changes: { sent: peers?.sent ?? 0, received: peers?.received ?? 0 } }) });

/** A peer's change: the session as the writer has it, or gone (count null). */
function apply([id, count, payload, maxInactiveMs]) {
  if (count === null) {
    sessions.delete(id);
    return;
  }
  recordVisible(id, count);
  const s = sessions.get(id);
  if (s === undefined) sessions.set(id, { id, count, payload, maxInactiveMs, lastAccess: Date.now() });
  else {
    s.count = count;
    s.payload = payload;
    s.maxInactiveMs = maxInactiveMs;
    s.lastAccess = Date.now();
  }
}

const peers = REPLICATING ? new MapPeers({ port: cfg.replPort, peers: cfg.peers, apply }) : undefined;
if (REPLICATING) await peers.start();
serveHttp(server);
