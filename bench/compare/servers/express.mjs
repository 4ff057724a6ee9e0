// Rows "express-mem", "express-redis", "express-redis2": express 5 + express-session, with its
// MemoryStore or connect-redis (redis client 4) on the harness's redis-server.
// Extra BENCH_SERVER keys: store: "memory" | "redis", redisPort.
// express-session settings as most applications use them: resave false, saveUninitialized false
// (a /app/read without a session creates none), a signed cookie named JSESSIONID.
import express from 'express';
import session from 'express-session';
import { COOKIE, failed, NAME, onShutdown, PORT, payloadBytes, payloadOf, queryInt, ready, SECRET } from './common.mjs';
import { redisStore } from './redis-store.mjs';

const redis = await redisStore();
const store = redis?.store ?? new session.MemoryStore();

const app = express();
app.disable('x-powered-by');
app.disable('etag');
const text = (res, body) => res.type('text/plain').send(body);

app.get('/app/health', (_req, res) => text(res, `ok node=${NAME}\n`));
app.use(
  '/app',
  session({
    name: COOKIE,
    secret: SECRET,
    store,
    resave: false,
    saveUninitialized: false,
    cookie: { path: '/app', httpOnly: true, secure: false },
  }),
);
app.get('/app/counter', (req, res) => {
  const s = req.session;
  const count = (s.count ?? 0) + 1;
  s.count = count;
  s.payload = payloadOf(count, payloadBytes(req.url));
  text(res, `count=${count} node=${NAME} id=${req.sessionID}\n`);
});
app.get('/app/read', (req, res) => text(res, `count=${req.session.count ?? 0} node=${NAME}\n`));
app.get('/app/invalidate', (req, res, next) => {
  const had = req.session.count !== undefined;
  const id = req.sessionID;
  req.session.destroy((err) => {
    if (err) return next(err);
    text(res, `invalidated=${had ? 1 : 0} node=${NAME} id=${had ? id : '-'}\n`);
  });
});
app.get('/app/expire-soon', (req, res) => {
  const seconds = queryInt(req.url, 'seconds', 5);
  req.session.cookie.maxAge = seconds * 1000;
  req.session.expireSoon = seconds; // a change, so the session is saved with the new expiry
  text(res, `expires-in=${seconds} node=${NAME}\n`);
});

const server = app.listen(PORT, '127.0.0.1', (err) => {
  if (err) failed(err);
  else ready();
});
server.keepAliveTimeout = 65_000;
server.on('error', failed);
onShutdown(async () => {
  await new Promise((r) => server.close(r));
  await redis?.close();
});
