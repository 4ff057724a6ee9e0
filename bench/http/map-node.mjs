// Calibration node for the HTTP benchmark (forked by bench/http/run.mjs): the same counter app
// (examples/counter/app.mjs at /app) behind a hand-written in-memory Map session and bare node:http,
// no clowder at all. It is the shared workload's "hand-written in-memory Map session" reference
// (71.0k req/s on a quiet machine), so the clowder rows of one run can be read against the machine
// of that moment.
//
// With peers (BENCH_NODE members beyond its own clusterPort), the replication floor: every request
// that used a session pushes the session's count and payload to the peers (bench/lib/map-peers.mjs),
// the turn's changes in one write per peer before the turn's responses end (as clowder's
// batchResponses orders them); peers apply them to their Map.
//
// Same contract as node.mjs: configuration in BENCH_NODE ({ name, httpPort, app }), sends
// { type: 'ready', pid } over IPC, answers { id, cmd: 'stop' | 'stats' | 'mem' } (stats: sessions, and
// changes { sent, received } for the settle check), exits when the IPC
// channel closes.
import { randomBytes } from 'node:crypto';
import { createServer, IncomingMessage } from 'node:http';
import { MapPeers } from '../lib/map-peers.mjs';
import { reportReady, serveCommands } from '../lib/worker.mjs';

const cfg = JSON.parse(process.env.BENCH_NODE ?? '{}');
const { default: app } = await import(cfg.app);
const route = cfg.name ?? 'M';
const sessions = new Map();

class MapSession {
  constructor(id) {
    this.id = id;
  }
  invalidate() {
    sessions.delete(this.id);
  }
  setMaxInactiveInterval() {}
}

class Req extends IncomingMessage {
  get jvmRoute() {
    return route;
  }
  get session() {
    return this.getSession(true);
  }
  getSession(create = true) {
    if (this._session !== undefined) return this._session;
    const cookie = this.headers.cookie;
    if (cookie !== undefined) {
      const i = cookie.indexOf('JSESSIONID=');
      if (i >= 0) {
        const s = sessions.get(cookie.slice(i + 11, i + 43));
        if (s !== undefined) return (this._session = s);
      }
    }
    if (!create) return undefined;
    const s = new MapSession(randomBytes(16).toString('hex').toUpperCase());
    sessions.set(s.id, s);
    this._res.setHeader('Set-Cookie', `JSESSIONID=${s.id}.${route}; Path=/app; HttpOnly; SameSite=Lax`);
    return (this._session = s);
  }
}

const server = createServer({ IncomingMessage: Req }, (req, res) => {
  const url = req.url ?? '/';
  if (!url.startsWith('/app')) {
    res.writeHead(404);
    res.end('not found\n');
    return;
  }
  req.url = url.length === 4 ? '/' : url.slice(4);
  req._res = res;
  if (peers !== undefined) holdEnd(req, res);
  app(req, res);
});

// ---- replication (the floor rows) ----
const peerList = (cfg.members ?? []).filter((m) => m !== `127.0.0.1:${cfg.clusterPort}`);
const peers =
  peerList.length > 0
    ? new MapPeers({
        port: cfg.clusterPort,
        peers: peerList,
        apply: ([id, count, payload]) => {
          if (count === null) {
            sessions.delete(id);
            return;
          }
          let s = sessions.get(id);
          if (s === undefined) sessions.set(id, (s = new MapSession(id)));
          s.count = count;
          s.payload = payload;
        },
      })
    : undefined;
/** Responses of this turn: [res, end arguments] pairs, ended after the turn's changes were written. */
let held = [];

function holdEnd(req, res) {
  const end = res.end;
  res.end = (...args) => {
    const s = req._session;
    if (s !== undefined) peers.push(sessions.has(s.id) ? [s.id, s.count, s.payload] : [s.id, null]);
    if (held.push(end, res, args) === 3) setImmediate(endHeld);
    return res;
  };
}

function endHeld() {
  peers.flush();
  const h = held;
  held = [];
  for (let i = 0; i < h.length; i += 3) h[i].apply(h[i + 1], h[i + 2]);
}
server.keepAliveTimeout = 5000;
await new Promise((resolve) => server.listen(cfg.httpPort, '127.0.0.1', resolve));
if (peers !== undefined) {
  await peers.start();
  await peers.allConnected();
}

serveCommands({
  stop: () => {
    server.closeAllConnections();
    server.close();
    setImmediate(() => process.exit(0));
    return {};
  },
  stats: () => ({ sessions: sessions.size, changes: { sent: peers?.sent ?? 0, received: peers?.received ?? 0 } }),
  mem: () => ({ gc: false, mem: process.memoryUsage() }),
});
reportReady({ startMs: 0, peers: peers?.connected ?? 0 });
