// Receiver side of the channel benchmark (bench/channel/run.mjs forks this file; it is not run alone).
//
// It obeys commands over the IPC channel (bench/lib/worker.mjs serveCommands), answering {id, ok, ...result}:
//   rawSink {}                 bare node:net server that counts received bytes      -> {port}
//   rawEcho {size}             bare node:net server echoing `size` bytes per `size`   -> {port}
//   rawStop {}                 closes the raw server and its sockets
//   channelStart {key, port, peerPort, clusterKey?, encrypt?, keep?}
//                              clowder channel on 127.0.0.1:port (static membership of both ports)
//                              whose message handler counts messages and bytes       -> {port}
//                              (registered with { borrow: true } unless keep)
//   channelStop {key}          graceful stop of that channel
//   reset {}                   zeroes the counters
//   mark {}                    -> {msgs, bytes, t, cpuUs}: counters, this process's clock (ms) and CPU time
//                              (µs), so rates are computed on the receiving side over its own time window
//   exit {}                    exits (cleanly, so that --cpu-prof writes its profile)
//
// The process exits as soon as the parent goes away (the IPC channel disconnects).
import { createServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createChannel, silentLogger } from '../../dist/index.js';
import { reportReady, serveCommands } from '../lib/worker.mjs';

if (typeof process.send !== 'function') {
  console.error('bench/channel/peer.mjs is started by bench/channel/run.mjs (it needs an IPC channel)');
  process.exit(2);
}

const counts = { msgs: 0, bytes: 0 };
let raw; // { server, sockets }
const channels = new Map(); // key -> channel (one per variant, all alive at once)

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

async function rawServer(onSocket) {
  if (raw) await commands.rawStop();
  const sockets = new Set();
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  raw = { server, sockets };
  return { port: await listen(server) };
}

const commands = {
  rawSink() {
    return rawServer((socket) => {
      socket.on('data', (chunk) => {
        counts.bytes += chunk.length;
      });
    });
  },

  rawEcho({ size }) {
    const reply = Buffer.alloc(size, 0x5a);
    return rawServer((socket) => {
      let pending = 0;
      socket.on('data', (chunk) => {
        counts.bytes += chunk.length;
        pending += chunk.length;
        while (pending >= size) {
          pending -= size;
          counts.msgs++;
          socket.write(reply);
        }
      });
    });
  },

  async rawStop() {
    if (!raw) return {};
    const { server, sockets } = raw;
    raw = undefined;
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(() => resolve()));
    return {};
  },

  async channelStart({ key, port, peerPort, clusterKey, encrypt, keep }) {
    if (channels.has(key)) await commands.channelStop({ key });
    const config = {
      name: 'bench-receiver',
      receiver: { port, autoBind: 1 },
      membership: { type: 'static', members: [`127.0.0.1:${peerPort}`, `127.0.0.1:${port}`] },
    };
    if (clusterKey !== undefined) {
      config.clusterKey = clusterKey;
      config.encrypt = encrypt;
    }
    const ch = createChannel(config, { logger: silentLogger });
    ch.onMessage(
      (msg) => {
        counts.msgs++;
        counts.bytes += msg.bytes.length;
      },
      { borrow: !keep },
    );
    await ch.start();
    channels.set(key, ch);
    return { port: ch.local.port };
  },

  async channelStop({ key }) {
    const ch = channels.get(key);
    channels.delete(key);
    if (ch) await ch.stop();
    return {};
  },

  reset() {
    counts.msgs = 0;
    counts.bytes = 0;
    return {};
  },

  mark() {
    const cpu = process.cpuUsage();
    return { msgs: counts.msgs, bytes: counts.bytes, t: performance.now(), cpuUs: cpu.user + cpu.system };
  },

  async exit() {
    for (const key of [...channels.keys()]) await commands.channelStop({ key }).catch(() => {});
    await commands.rawStop().catch(() => {});
    setImmediate(() => process.exit(0));
    return {};
  },
};

serveCommands(commands);
reportReady();
