// Calibration node for the HTTP benchmark (forked by bench/http/run.mjs): the same counter app
// (examples/counter/app.mjs at /app) behind a hand-written in-memory Map session and bare node:http,
// no clowder at all. It is the shared workload's "hand-written in-memory Map session" reference
// (71.0k req/s on a quiet machine), so the clowder rows of one run can be read against the machine
// of that moment.
//
// Same contract as node.mjs: configuration in BENCH_NODE ({ name, httpPort, app }), sends
// { type: 'ready', pid } over IPC, answers { id, cmd: 'stop' | 'stats' | 'mem' }, exits when the IPC
// channel closes.
import { randomBytes } from 'node:crypto';
import { createServer, IncomingMessage } from 'node:http';

const cfg = JSON.parse(process.env.BENCH_NODE ?? '{}');
process.on('disconnect', () => process.exit(0));
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
  app(req, res);
});
server.keepAliveTimeout = 5000;
await new Promise((resolve) => server.listen(cfg.httpPort, '127.0.0.1', resolve));

process.on('message', (m) => {
  if (m?.cmd === 'stop') {
    server.closeAllConnections();
    server.close();
    process.send({ id: m.id, ok: true });
    setImmediate(() => process.exit(0));
  } else if (m?.cmd === 'stats') process.send({ id: m.id, ok: true, sessions: sessions.size });
  else if (m?.cmd === 'mem') process.send({ id: m.id, ok: true, gc: false, mem: process.memoryUsage() });
  else process.send({ id: m?.id, ok: false, error: `unknown command ${m?.cmd}` });
});
process.send({ type: 'ready', pid: process.pid, startMs: 0, peers: 0 });
