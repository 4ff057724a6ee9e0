// The connect-redis store the Redis-backed rows share (express-session and @fastify/session both
// take it), on the harness's redis-server (BENCH_SERVER keys: store "redis", redisPort).
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';
import { cfg, NAME } from './common.mjs';

/** `{ store, close }` when this row uses Redis, else undefined (the framework's own memory store). */
export async function redisStore() {
  if (cfg.store !== 'redis') return undefined;
  const redis = createClient({ url: `redis://127.0.0.1:${cfg.redisPort}` });
  redis.on('error', (err) => console.error(`${NAME}: redis: ${err.message}`));
  await redis.connect();
  return {
    store: new RedisStore({ client: redis, prefix: 'sess:' }),
    close: () => redis.quit().catch(() => {}),
  };
}
