// Row "clowder-express": clowder's express-session compatibility path — an Express 5 app with
// clowder's session middleware (library mode: createSessions(...).middleware()) in place of
// express-session + a store, the same routes as express.mjs. A node of a clowder cluster.
// Extra BENCH_SERVER keys: clusterPort, members (host:port list), domain, send ("async" | "sync"),
// readOnlyFilter (sessions.readOnlyFilter).
// Also answers GET /_clowder/stats (the channel's and the manager's counters, the shape the
// clowder node serves) for the harness's membership wait and request counts.
import express from 'express';
import { createSessions, silentLogger } from '../../../dist/index.js';
import { cfg, failed, NAME, onShutdown, PORT, payloadBytes, payloadOf, queryInt, ready } from './common.mjs';

const sessions = createSessions(
  {
    channel: {
      name: NAME,
      ...(cfg.domain ? { domain: cfg.domain } : {}),
      receiver: { address: '127.0.0.1', port: cfg.clusterPort, autoBind: 1 },
      membership: { type: 'static', members: cfg.members ?? [] },
    },
    sessions: {
      contextPath: '/app',
      sendOptions: cfg.send ?? 'async',
      ...(cfg.readOnlyFilter ? { readOnlyFilter: cfg.readOnlyFilter } : {}),
    },
  },
  { logger: silentLogger },
);

const app = express();
app.disable('x-powered-by');
app.disable('etag');
const text = (res, body) => res.type('text/plain').send(body);

app.get('/_clowder/stats', (_req, res) => {
  res.json({ node: NAME, channel: sessions.channel.stats(), sessions: [sessions.manager.stats()] });
});
app.get('/app/health', (_req, res) => text(res, `ok node=${NAME}\n`));
app.use('/app', sessions.middleware());
app.get('/app/counter', (req, res) => {
  const s = req.session;
  const count = (s.count ?? 0) + 1;
  s.count = count;
  s.payload = payloadOf(count, payloadBytes(req.url));
  text(res, `count=${count} node=${NAME} id=${s.id}\n`);
});
app.get('/app/read', (req, res) => {
  const s = req.getSession(false); // a read without a session creates none
  text(res, `count=${s?.count ?? 0} node=${NAME}\n`);
});
app.get('/app/invalidate', (req, res, next) => {
  const s = req.getSession(false);
  if (s === undefined) return text(res, `invalidated=0 node=${NAME} id=-\n`);
  const id = s.id;
  s.destroy((err) => {
    if (err) return next(err);
    text(res, `invalidated=1 node=${NAME} id=${id}\n`);
  });
});
app.get('/app/expire-soon', (req, res) => {
  const seconds = queryInt(req.url, 'seconds', 5);
  req.session.setMaxInactiveInterval(seconds);
  text(res, `expires-in=${seconds} node=${NAME}\n`);
});

let server;
onShutdown(async () => {
  if (server) await new Promise((r) => server.close(r));
  await sessions.stop();
});
try {
  await sessions.start();
} catch (err) {
  failed(err);
}
server = app.listen(PORT, '127.0.0.1', (err) => {
  if (err) failed(err);
  else ready();
});
server.keepAliveTimeout = 65_000;
server.on('error', failed);
