// Runs inside one network namespace of the test bed (test/helpers/netbed.ts): accepts connections
// on a Unix socket (a file, visible from every namespace) and connects each to HOST:PORT inside
// this namespace. The test process, which stays in the host's namespace, reaches the node's HTTP
// server this way without any address or route on the host.
//   node scripts/netbed-forward.mjs SOCKET HOST PORT     prints "ready" once listening
import { rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';

const [socketPath, host, port] = process.argv.slice(2);
if (!socketPath || !host || !port) {
  process.stderr.write('usage: netbed-forward.mjs SOCKET HOST PORT\n');
  process.exit(2);
}
rmSync(socketPath, { force: true });
const server = createServer((client) => {
  const upstream = connect(Number(port), host);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close).on('close', close);
  upstream.on('error', close).on('close', close);
  client.pipe(upstream).pipe(client);
});
server.listen(socketPath, () => process.stdout.write('ready\n'));
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
