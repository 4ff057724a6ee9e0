// Micro benchmark of what one cluster write costs the kernel over TCP loopback against a Unix
// socket (Linux abstract name, as receiver.localSocket uses between peers on one host): a child
// process reads and drops; this process writes one 2,200-byte buffer per event-loop turn (about a
// turn's replication batch of two requests). Prints CPU µs per write on each side (user + system,
// from process.cpuUsage over the whole exchange), median of 5 rounds per transport, the two
// transports alternating.
//
//   node bench/micro/local-socket.bench.mjs
import { fork } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { median } from '../lib/stats.mjs';

const WRITES = Number(process.env.BENCH_WRITES ?? 50_000);
const ROUNDS = 5;

if (process.argv[2] === 'sink') {
  const path = process.argv[3] === 'tcp' ? 'tcp' : `\0${process.argv[3]}`;
  let base = process.cpuUsage();
  process.on('message', () => {
    base = process.cpuUsage(); // the exchange starts: start-up is not its cost
  });
  const server = createServer((s) => {
    s.on('data', () => {});
    s.on('end', () => {
      const u = process.cpuUsage(base);
      process.send({ cpuUs: u.user + u.system });
      server.close();
      s.end();
    });
  });
  const ready = () => process.send({ port: path === 'tcp' ? server.address().port : undefined });
  if (path === 'tcp') server.listen(0, '127.0.0.1', ready);
  else server.listen({ path }, ready);
} else {
  if (process.platform !== 'linux') {
    console.error('bench/micro/local-socket: abstract Unix sockets are Linux only');
    process.exit(2);
  }
  const self = fileURLToPath(import.meta.url);
  const once = (child) => new Promise((resolve) => child.once('message', resolve));
  async function round(kind, i) {
    const name = `clowder-bench-local-${process.pid}-${i}`;
    const child = fork(self, ['sink', kind === 'tcp' ? 'tcp' : name]);
    const { port } = await once(child);
    child.send('start');
    const sock = kind === 'tcp' ? connect({ port, host: '127.0.0.1', noDelay: true }) : connect({ path: `\0${name}` });
    await new Promise((r) => sock.once('connect', r));
    const buf = Buffer.alloc(2200, 7);
    const u0 = process.cpuUsage();
    let n = 0;
    await new Promise((resolve) => {
      const step = () => {
        if (n++ >= WRITES) return resolve();
        sock.write(buf);
        setImmediate(step);
      };
      step();
    });
    const u = process.cpuUsage(u0);
    sock.end();
    const { cpuUs } = await once(child);
    child.disconnect();
    return { writer: (u.user + u.system) / WRITES, reader: cpuUs / WRITES };
  }
  const rows = { tcp: [], unix: [] };
  for (let r = 0; r < ROUNDS; r++) for (const kind of ['tcp', 'unix']) rows[kind].push(await round(kind, r));
  console.log('transport   writer µs/write   reader µs/write   (median of 5 rounds)');
  for (const [kind, rs] of Object.entries(rows))
    console.log(
      `${kind.padEnd(10)}  ${median(rs.map((x) => x.writer))
        .toFixed(2)
        .padStart(15)}   ${median(rs.map((x) => x.reader))
        .toFixed(2)
        .padStart(15)}`,
    );
}
