// Shared pieces of the comparison servers (bench/compare/run.mjs starts them; not meant to be run
// by hand). Every server implements the counter app of the shared workload
// (../shared/workload/README.md, examples/counter/app.mjs):
//   GET /app/counter[?payload=N]   count += 1; payload attribute of N bytes (default 1024)
//   GET /app/read                  read count; the session is not changed
//   GET /app/invalidate            invalidate the session
//   GET /app/expire-soon?seconds=N this session's max inactive interval
//   GET /app/health                no session
// Session cookie name JSESSIONID; bodies are plain text ending in a newline.
//
// Configuration comes as JSON in the environment variable BENCH_SERVER:
//   { name, port, redisPort?, ... } (each server documents its own extra keys).
// Every server exits cleanly on SIGTERM / SIGINT (so --cpu-prof profiles get written) and when its
// parent's IPC channel closes, if it has one.

export const cfg = JSON.parse(process.env.BENCH_SERVER ?? '{}');
export const NAME = cfg.name ?? 'n1';
export const PORT = Number(cfg.port ?? 0);
export const COOKIE = 'JSESSIONID';
export const SECRET = 'clowder-bench-compare-secret-of-at-least-32-chars';
export const TEXT = { 'Content-Type': 'text/plain; charset=utf-8' };
export const MAX_PAYLOAD = 1 << 20;

import { serveCommands } from '../../lib/worker.mjs';

export { payloadOf } from '../../lib/workload.mjs';

/** Integer query parameter `key` of a URL (path?query), or `fallback`. */
export function queryInt(url, key, fallback) {
  const q = url.indexOf('?');
  if (q < 0) return fallback;
  const m = new RegExp(`(?:^|&)${key}=(\\d+)`).exec(url.slice(q + 1));
  return m ? Number(m[1]) : fallback;
}

export const payloadBytes = (url) => Math.min(queryInt(url, 'payload', 1024), MAX_PAYLOAD);

/** Runs `stop` (async) once on SIGTERM/SIGINT or when the parent goes, then exits 0. */
export function onShutdown(stop) {
  let stopping = false;
  const go = async () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(0), 5000);
    force.unref();
    try {
      await stop();
    } catch {}
    process.exit(0);
  };
  process.on('SIGTERM', go);
  process.on('SIGINT', go);
  if (process.send) process.on('disconnect', go);
}

/** Listens on 127.0.0.1:PORT with long keep-alive, reports ready (or failed), closes on shutdown. */
export function serveHttp(server) {
  server.keepAliveTimeout = 65_000;
  server.on('error', failed);
  server.listen(PORT, '127.0.0.1', () => ready());
  onShutdown(() => new Promise((r) => server.close(r)));
}

/** Tells the parent (if any) that the server listens. */
export function ready(extra = {}) {
  const msg = { type: 'ready', pid: process.pid, name: NAME, port: PORT, ...extra };
  if (process.send) process.send(msg);
  else console.log(JSON.stringify(msg));
}

export function failed(err) {
  const msg = { type: 'failed', error: err?.stack ?? String(err) };
  if (process.send) process.send(msg);
  else console.error(msg.error);
  setImmediate(() => process.exit(1));
}

/**
 * Answers the harness's commands over IPC with `handlers[cmd](message)` (bench/lib/worker.mjs
 * serveCommands). Every server also answers `visible` (see {@link recordVisible}).
 */
export function onCommands(handlers = {}) {
  // onShutdown handles the parent going away (a graceful stop, so profiles get written).
  if (process.send)
    serveCommands({ visible: () => ({ log: visible.splice(0) }), ...handlers }, { exitOnDisconnect: false });
}

/** The lag probe's visibility log: [session id, count, CLOCK_MONOTONIC ns] per change applied. */
const visible = [];

/**
 * With BENCH_SERVER key visibleLog (lag clusters only): notes that this server just applied a
 * replicated `count` for session `id`, on the host's monotonic clock, for run.mjs to match against
 * the moment the client had the writer's answer (lag-client.mjs).
 */
export function recordVisible(id, count) {
  if (cfg.visibleLog) visible.push([id, count, Number(process.hrtime.bigint())]);
}
