// One worker of the node:cluster example (server.mjs forks it; PM2 runs it directly in cluster
// mode, see ecosystem.config.cjs). Each worker is a clowder member holding every session; they
// all serve one HTTP port, shared by node:cluster.
//
// Membership (default): a static list, worker i at 127.0.0.1:CLUSTER_BASE_PORT+i. autoBind 1: a
// worker never moves off its listed port (if it is taken, the worker fails at start and says so).
import { createSessions } from 'clowder';
import express from 'express';

const WORKERS = Number(process.env.WORKERS ?? 3);
const PORT = Number(process.env.PORT ?? 3000);
const CLUSTER_BASE_PORT = Number(process.env.CLUSTER_BASE_PORT ?? 4100);
// server.mjs sets WORKER_INDEX; PM2 sets NODE_APP_INSTANCE. Both stay the same across restarts.
const index = Number(process.env.WORKER_INDEX ?? process.env.NODE_APP_INSTANCE ?? 0);
const members = Array.from({ length: WORKERS }, (_, i) => `127.0.0.1:${CLUSTER_BASE_PORT + i}`);

// MEMBERSHIP=multicast: heartbeats on the loopback interface (TTL 0, never leaves the host) on
// MULTICAST_PORT; no index needed, autoBind gives each worker the next free port from
// CLUSTER_BASE_PORT. Give each app its own MULTICAST_PORT (or domain).
const channel =
  process.env.MEMBERSHIP === 'multicast'
    ? {
        domain: 'node-cluster-example',
        receiver: { port: CLUSTER_BASE_PORT },
        membership: { type: 'multicast', port: Number(process.env.MULTICAST_PORT ?? 45600) },
      }
    : { receiver: { port: CLUSTER_BASE_PORT + index, autoBind: 1 }, membership: { type: 'static', members } };
const sessions = createSessions({ channel: { name: `w${index}`, ...channel } });
await sessions.start(); // joins, and takes the other workers' sessions: only then serve

const app = express();
app.use(sessions.middleware());
app.use((_req, res, next) => {
  res.set('X-Worker', `${index}:${process.pid}`);
  next();
});
app.get('/put', (req, res) => {
  req.session.value = String(req.query.value ?? '');
  req.session.writes = (req.session.writes ?? 0) + 1;
  res.json({ worker: index, value: req.session.value, writes: req.session.writes });
});
app.get('/get', (req, res) => {
  res.json({ worker: index, value: req.session.value ?? null, writes: req.session.writes ?? 0 });
});

const server = app.listen(PORT, () => {
  const held = sessions.manager.stats().activeSessions;
  process.stdout.write(
    `${JSON.stringify({ event: 'worker-ready', worker: index, pid: process.pid, sessions: held })}\n`,
  );
  process.send?.('ready'); // PM2 (wait_ready) counts the instance online from here
});

// Graceful stop (server.mjs or PM2 send SIGTERM/SIGINT): finish requests, leave the cluster; the
// other workers keep the sessions.
const stop = () => {
  server.close();
  server.closeIdleConnections();
  sessions.stop().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
