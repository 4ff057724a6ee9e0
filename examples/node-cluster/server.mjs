// clowder under node:cluster: the primary forks WORKERS workers (worker.mjs) that share one HTTP
// port; each worker is a clowder member holding every session. No sticky routing is needed
// (node:cluster hands connections out round-robin): a worker about to serve a session another
// worker owns takes it over first, so no write is lost. A worker that dies is forked again with
// the same index; it takes the sessions from the others before it serves, so a restart loses nothing.
//
//   node examples/node-cluster/server.mjs     # PORT=3000 WORKERS=3 CLUSTER_BASE_PORT=4100
import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';

const WORKERS = Number(process.env.WORKERS ?? 3);

cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker.mjs', import.meta.url)) });
const indexOf = new Map();
const fork = (index) => indexOf.set(cluster.fork({ WORKER_INDEX: String(index) }), index);
let stopping = false;

cluster.on('exit', (worker, code, signal) => {
  const index = indexOf.get(worker);
  indexOf.delete(worker);
  if (stopping) return;
  process.stdout.write(
    `${JSON.stringify({ event: 'worker-exit', worker: index, pid: worker.process.pid, code, signal })}\n`,
  );
  fork(index); // same index: same cluster port, same entry in the member list
});

const stop = () => {
  stopping = true;
  for (const worker of indexOf.keys()) worker.process.kill('SIGTERM'); // each leaves gracefully
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

for (let i = 0; i < WORKERS; i++) fork(i);
process.stdout.write(`${JSON.stringify({ event: 'primary', pid: process.pid, workers: WORKERS })}\n`);
