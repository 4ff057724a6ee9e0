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

// The lag probe's visibility log (cfg.visibleLog, lag clusters only): when this node applied each
// replicated `count`, on the host's monotonic clock, for run.mjs to match against the moment the
// client had the writer's answer (lag-client.mjs). The listener runs where the delta is applied, so
// the value is visible to this node's next request from then on.
// Registered once started (the node creates its managers in start()), before any session exists.
const visible = [];
function logVisibility() {
  const record = (s, name, value, replicated) => {
    if (replicated && name === 'count') visible.push([s.id, value, Number(process.hrtime.bigint())]);
  };
  node.managers[0].on('attributeAdded', record);
  node.managers[0].on('attributeReplaced', record);
}

const handlers = {
  fill: (m) => fill(m.n, m.payload ?? 1024),
  stats: () => ({ stats: node.stats() }),
  visible: () => ({ log: visible.splice(0) }),
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
  if (cfg.visibleLog) logVisibility();
  ready({ startMs: performance.now() - t0 });
} catch (err) {
  failed(err);
}
