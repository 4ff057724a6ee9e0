// One clowder node for the HTTP benchmark (bench/http/run.mjs forks it; it is not meant to be run by hand).
//
// Configuration comes as JSON in the environment variable BENCH_NODE:
//   { name, httpPort, clusterPort, members: ["127.0.0.1:C1", ...], domain, send: "async"|"sync",
//     expect: <number of peers that must serve /app before the node reports ready>, app: <abs path>,
//     bufferPoolSize?: <sets Buffer.poolSize>, chunkSize?: <sessions.stateTransferChunkSize>,
//     key?: "mac" | "aes" (a cluster key: frames authenticated, or also encrypted with AES-256-GCM),
//     manager?: "delta" | "backup" (sessions.manager), backups?: <sessions.backups>,
//     forward?: "auto" | "always" | "off" (http.forward; default the node's, "off"),
//     localSocket?: boolean (cluster.receiver.localSocket; default the node's, true) }
// It starts the node (createClusterNode, silent logger), waits until it sees `expect` peers that
// serve /app, then sends { type: 'ready', pid, startMs, stateTransfer, peers } over IPC.
//
// IPC commands ({ id, cmd, ... } -> { id, ok, ... }; bench/lib/worker.mjs serveCommands):
//   fill  { n, payload }  create n sessions directly on the manager (count=1, a distinct payload
//                         string of `payload` bytes made like the counter app's), each a request
//                         (requestStarted/requestCompleted, so it replicates); yields every 1000
//   churn { fraction, payload }  rewrite count and payload of about `fraction` of the sessions (a
//                         fixed pseudo-random pick), each as a request, so they replicate as deltas
//   stats                 manager stats (activeSessions, stateTransfer, counters), channel peers,
//                         changes: { sent, received } (created + delta messages; the settle check),
//                         and transport: { framesIn, bytesIn, bytesOut } (the channel's, all traffic)
//   mem   { gc }          process.memoryUsage() after global.gc() (run with --expose-gc)
//   stop                  graceful node.stop(), then exit
// The process exits when its IPC channel closes (the parent died), so nothing outlives a run.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep, setImmediate as yieldNow } from 'node:timers/promises';
import { createClusterNode, silentLogger } from '../../dist/index.js';
import { changeCounts, waitUntil } from '../lib/wait.mjs';
import { reportFailed, reportReady, serveCommands } from '../lib/worker.mjs';
import { fillSessions, payloadOf } from '../lib/workload.mjs';

const cfg = JSON.parse(process.env.BENCH_NODE ?? '{}');
/** The cluster key of the key rows (the same on every node of a run; loopback only). */
const BENCH_KEY = 'clowder-bench-http-cluster-key-of-at-least-32-chars';
// Diagnostic (--buffer-pool-size): Buffer.allocUnsafe below poolSize/2 slices shared 8 KiB slabs.
if (cfg.bufferPoolSize !== undefined) Buffer.poolSize = cfg.bufferPoolSize;

const node = createClusterNode(
  {
    name: cfg.name,
    http: { host: '127.0.0.1', port: cfg.httpPort, ...(cfg.forward !== undefined ? { forward: cfg.forward } : {}) },
    apps: [{ path: '/app', module: cfg.app }],
    cluster: {
      domain: cfg.domain,
      receiver: {
        ...{ address: '127.0.0.1', port: cfg.clusterPort, autoBind: 1 },
        ...(cfg.localSocket !== undefined ? { localSocket: cfg.localSocket } : {}),
      },
      membership: { type: 'static', members: cfg.members, pingIntervalMs: 500, dropTimeMs: 3000 },
      ...(cfg.key ? { clusterKey: BENCH_KEY, encrypt: cfg.key === 'aes' } : {}),
    },
    sessions: {
      sendOptions: cfg.send ?? 'async',
      ...(cfg.chunkSize !== undefined ? { stateTransferChunkSize: cfg.chunkSize } : {}),
      ...(cfg.manager !== undefined ? { manager: cfg.manager } : {}),
      ...(cfg.backups !== undefined ? { backups: cfg.backups } : {}),
    },
  },
  { logger: silentLogger },
);

const servesApp = (m) => Array.isArray(m.payload?.contexts) && m.payload.contexts.includes('/app');
const peers = () => node.channel.members().filter(servesApp).length;

function transportCounts() {
  const t = node.channel.stats().transport;
  return { framesIn: t.framesIn, bytesIn: t.bytesIn, bytesOut: t.bytesOut };
}

const fill = (n, payload) => fillSessions(node.managers[0], n, payload);

async function gcHard() {
  if (typeof global.gc !== 'function') return false;
  for (let i = 0; i < 3; i++) {
    global.gc();
    await sleep(50);
  }
  return true;
}

async function churn(fraction, payload) {
  const manager = node.managers[0];
  const t0 = performance.now();
  let seed = 12345;
  let n = 0;
  for (const s of [...manager.sessions.values()]) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    if (seed / 0x80000000 >= fraction) continue;
    manager.requestStarted(s);
    s.setAttribute('count', 2);
    s.setAttribute('payload', payloadOf(n + 7, payload));
    manager.requestCompleted(s);
    if (++n % 1000 === 0) await yieldNow();
  }
  return { ms: performance.now() - t0, changed: n };
}

const handlers = {
  fill: (m) => fill(m.n, m.payload ?? 1024),
  churn: (m) => churn(m.fraction ?? 0.5, m.payload ?? 1024),
  stats: () => {
    const st = node.managers[0].stats();
    return {
      sessions: st.activeSessions,
      stateTransfer: st.stateTransfer,
      manager: st,
      peers: peers(),
      changes: changeCounts(st),
      transport: transportCounts(),
    };
  },
  mem: async (m) => {
    const gc = m.gc === false ? false : await gcHard();
    return { gc, mem: process.memoryUsage() };
  },
  stop: async () => {
    await node.stop();
    setImmediate(() => process.exit(0));
    return {};
  },
};

serveCommands(handlers);

try {
  const t0 = performance.now();
  await node.start();
  const startMs = performance.now() - t0;
  await waitUntil(() => peers() >= (cfg.expect ?? 0), {
    timeoutMs: 20_000,
    intervalMs: 25,
    what: () => `${cfg.name} sees ${peers()} of ${cfg.expect} peers`,
  });
  reportReady({ startMs, stateTransfer: node.managers[0].stats().stateTransfer, peers: peers() });
} catch (err) {
  reportFailed(err);
}
