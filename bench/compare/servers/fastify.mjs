// Rows "fastify-mem", "fastify-redis": fastify 5 + @fastify/cookie + @fastify/session, with its
// default in-memory store or connect-redis (redis client 4) on the harness's redis-server.
// Extra BENCH_SERVER keys: store: "memory" | "redis", redisPort.
// Session settings: saveUninitialized false (a /app/read without a session creates none), rolling
// false (Set-Cookie only when the session is new), a signed cookie named JSESSIONID.
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import Fastify from 'fastify';
import { COOKIE, failed, NAME, onShutdown, PORT, payloadBytes, payloadOf, queryInt, ready, SECRET } from './common.mjs';
import { redisStore } from './redis-store.mjs';

const redis = await redisStore();
const store = redis?.store;

const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });

app.get('/app/health', async (_req, reply) => {
  reply.type('text/plain; charset=utf-8');
  return `ok node=${NAME}\n`;
});

// The session plugin only in this scope: /app/health above runs without it.
app.register(async (scope) => {
  scope.register(fastifyCookie);
  scope.register(fastifySession, {
    secret: SECRET,
    cookieName: COOKIE,
    saveUninitialized: false,
    rolling: false,
    cookie: { path: '/app', httpOnly: true, secure: false },
    ...(store ? { store } : {}),
  });
  scope.get('/app/counter', async (req, reply) => {
    const s = req.session;
    const count = (s.get('count') ?? 0) + 1;
    s.set('count', count);
    s.set('payload', payloadOf(count, payloadBytes(req.url)));
    reply.type('text/plain; charset=utf-8');
    return `count=${count} node=${NAME} id=${s.sessionId}\n`;
  });
  scope.get('/app/read', async (req, reply) => {
    reply.type('text/plain; charset=utf-8');
    return `count=${req.session.get('count') ?? 0} node=${NAME}\n`;
  });
  scope.get('/app/invalidate', async (req, reply) => {
    const had = req.session.get('count') !== undefined;
    const id = req.session.sessionId;
    await req.session.destroy();
    reply.type('text/plain; charset=utf-8');
    return `invalidated=${had ? 1 : 0} node=${NAME} id=${had ? id : '-'}\n`;
  });
  scope.get('/app/expire-soon', async (req, reply) => {
    const seconds = queryInt(req.url, 'seconds', 5);
    req.session.cookie.maxAge = seconds * 1000;
    req.session.set('expireSoon', seconds);
    reply.type('text/plain; charset=utf-8');
    return `expires-in=${seconds} node=${NAME}\n`;
  });
});

try {
  await app.listen({ port: PORT, host: '127.0.0.1' });
  ready();
} catch (err) {
  failed(err);
}
onShutdown(async () => {
  await app.close();
  await redis?.close();
});
