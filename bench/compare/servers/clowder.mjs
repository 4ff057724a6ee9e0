// Rows "clowder-off", "clowder-async", "clowder-sync" and the lag / failure-detection /
// state-transfer measurements: one clowder node running the counter app (examples/counter/app.mjs
// at /app) from the library's build (dist/).
// Extra BENCH_SERVER keys: clusterPort, members (["127.0.0.1:C1", ...], every node of the cluster,
// this one included), send ("async" | "sync"), domain, app (absolute path of the counter app).
// IPC commands ({ id, cmd, ... } -> { id, ok, ... }), when forked:
//   fill { n, payload }  create n sessions directly on the manager (count=1, a payload of `payload`
//                        bytes like the counter app's), each as one request (so it replicates)
//   stats                node.stats()
import { setImmediate as yieldNow } from 'node:timers/promises';
import { createClusterNode, silentLogger } from '../../../dist/index.js';
import { cfg, failed, NAME, onShutdown, PORT, payloadOf, ready } from './common.mjs';

const node = createClusterNode(
  {
    name: NAME,
    http: { host: '127.0.0.1', port: PORT },
    apps: [{ path: '/app', module: cfg.app }],
    cluster: {
      ...(cfg.domain ? { domain: cfg.domain } : {}),
      receiver: { address: '127.0.0.1', port: cfg.clusterPort, autoBind: 1 },
      membership: { type: 'static', members: cfg.members ?? [] },
    },
    sessions: { sendOptions: cfg.send ?? 'async' },
  },
  { logger: silentLogger },
);

async function fill(n, payload) {
  const manager = node.managers[0];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = manager.createSession();
    manager.requestStarted(s);
    s.setAttribute('count', 1);
    s.setAttribute('payload', payloadOf(i + 1, payload));
    manager.requestCompleted(s);
    if (i % 1000 === 999) await yieldNow();
  }
  return { ms: performance.now() - t0, sessions: manager.sessions.size };
}

const handlers = {
  fill: (m) => fill(m.n, m.payload ?? 1024),
  stats: () => ({ stats: node.stats() }),
};
process.on('message', async (m) => {
  if (m?.id === undefined) return;
  const h = handlers[m.cmd];
  try {
    if (h === undefined) throw new Error(`unknown command ${m.cmd}`);
    process.send({ id: m.id, ok: true, ...(await h(m)) });
  } catch (err) {
    process.send({ id: m.id, ok: false, error: err?.stack ?? String(err) });
  }
});

onShutdown(() => node.stop());
try {
  const t0 = performance.now();
  await node.start();
  ready({ startMs: performance.now() - t0 });
} catch (err) {
  failed(err);
}
