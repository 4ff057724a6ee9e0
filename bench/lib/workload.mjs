// The shared workload's counter data, for the harnesses' server processes, and where the workload is.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The shared workload's directory (session.lua, client.mjs): `--workload=DIR` when given, else
 * `../shared/workload` beside the repository, as the project lays it out. Throws with the fix
 * when it is not there.
 */
export function workloadDir(given) {
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const dir = given === undefined ? resolve(repo, '..', 'shared', 'workload') : resolve(given);
  if (!existsSync(resolve(dir, 'session.lua')))
    throw new Error(`no shared workload at ${dir} (session.lua missing): pass --workload=DIR`);
  return dir;
}

const COOKIE_PREFIX = 'JSESSIONID=';

/**
 * The session id in a Cookie header (the JSESSIONID value without its .route suffix), or
 * undefined: the hand-written Map session server's cookie parsing (servers/map.mjs, and beside it
 * in bench/micro/request-path.bench.mjs).
 */
export function cookieSessionId(header) {
  if (header === undefined) return undefined;
  let i = header.indexOf(COOKIE_PREFIX);
  while (i > 0 && header.charCodeAt(i - 1) !== 32 && header.charCodeAt(i - 1) !== 59)
    i = header.indexOf(COOKIE_PREFIX, i + 1);
  if (i < 0) return undefined;
  const start = i + COOKIE_PREFIX.length;
  let end = header.indexOf(';', start);
  if (end < 0) end = header.length;
  const value = header.slice(start, end).trim();
  const dot = value.lastIndexOf('.');
  return dot < 0 ? value : value.slice(0, dot);
}

/** `count=<n>;` repeated and cut to n bytes (the counter app's payload). */
export function payloadOf(count, n) {
  const unit = `count=${count};`;
  return unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
}

/**
 * Creates `n` sessions on a clowder DeltaManager as the counter app would (count 1, a payload of
 * `payload` bytes), each as a request so that it replicates; yields every 1000.
 */
export async function fillSessions(manager, n, payload) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = manager.createSession();
    manager.requestStarted(s);
    s.setAttribute('count', 1);
    s.setAttribute('payload', payloadOf(i + 1, payload));
    manager.requestCompleted(s);
    if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
  }
  return { ms: performance.now() - t0, sessions: manager.sessions.size };
}

/**
 * A started session manager with no peers, for the in-process micro benchmarks (bench/micro/):
 * node `name`, context /app, a static member list naming nobody who answers; silent. Stop the
 * returned cluster when done.
 */
export async function standaloneSessions(name) {
  const { createSessions, silentLogger } = await import('../../dist/index.js');
  const cluster = createSessions(
    {
      channel: {
        name,
        receiver: { address: '127.0.0.1', port: 0 },
        membership: { type: 'static', members: ['127.0.0.1:1'] },
      },
      sessions: { contextPath: '/app' },
    },
    { logger: silentLogger },
  );
  await cluster.start();
  return cluster;
}
