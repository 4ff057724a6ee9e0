import { createClusterNode, silentLogger } from '../../../dist/index.js';
import { fillSessions } from '../../lib/workload.mjs';
import { cfg, failed, NAME, onCommands, onShutdown, PORT, ready, recordVisible } from './common.mjs';

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

// Lag clusters: the value is visible to this node's next request from the moment the listener
// runs. Registered once started (the node creates its managers in start()), before any session exists.
function logVisibility() {
  const record = (s, name, value, replicated) => {
    if (replicated && name === 'count') recordVisible(s.id, value);
  };
  node.managers[0].on('attributeAdded', record);
  node.managers[0].on('attributeReplaced', record);
}

onCommands({
  fill: (m) => fill(m.n, m.payload ?? 1024),
  stats: () => ({ stats: node.stats() }),
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
