import { createClusterNode, silentLogger } from '../../../dist/index.js';
import { fillSessions } from '../../lib/workload.mjs';
import { cfg, failed, NAME, onShutdown, PORT, ready } from './common.mjs';

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
    sessions: {
      sendOptions: cfg.send ?? 'async',
      ...(cfg.ownership ? { ownership: cfg.ownership } : {}),
      ...(cfg.readOnlyFilter ? { readOnlyFilter: cfg.readOnlyFilter } : {}),
    },
  },
  { logger: silentLogger },
);

const fill = (n, payload) => fillSessions(node.managers[0], n, payload);

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
