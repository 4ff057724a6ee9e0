// The machine's floor for any replication between processes: one-way latency of an 8-byte loopback
// TCP message from this process to a child it forks, both idle otherwise. The sender writes its
// CLOCK_MONOTONIC time (process.hrtime), the receiver subtracts it from its own on arrival and
// answers one byte; the next message leaves after --gap-ms. run.mjs prints it beside the lag rows.
// usage: node wake-floor.mjs [--n 2000] [--gap-ms 1]
import { fork } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { percentile } from '../lib/stats.mjs';

if (process.argv[2] === '--receiver') {
  const lags = [];
  const server = createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d) => {
      const now = process.hrtime.bigint();
      for (let o = 0; o + 8 <= d.length; o += 8) lags.push(Number(now - d.readBigUInt64BE(o)) / 1e6);
      s.write('k');
    });
  });
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  process.on('message', () => process.send({ lags }, () => process.exit(0)));
} else {
  const opt = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];
  const n = Number(opt.n ?? 2000);
  const gapMs = Number(opt['gap-ms'] ?? 1);
  const child = fork(fileURLToPath(import.meta.url), ['--receiver']);
  try {
    const { port } = await new Promise((resolve) => child.once('message', resolve));
    const s = connect(port, '127.0.0.1');
    s.setNoDelay(true);
    await new Promise((resolve) => s.once('connect', resolve));
    const b = Buffer.alloc(8);
    for (let i = 0; i < n; i++) {
      b.writeBigUInt64BE(process.hrtime.bigint());
      s.write(Buffer.from(b));
      await new Promise((resolve) => s.once('data', resolve));
      await new Promise((resolve) => setTimeout(resolve, gapMs));
    }
    s.destroy();
    child.send('report');
    const { lags } = await new Promise((resolve) => child.once('message', resolve));
    const p = (q) => percentile(lags, q).toFixed(3);
    console.log(`messages=${lags.length} p50_ms=${p(50)} p99_ms=${p(99)} max_ms=${p(100)}`);
  } finally {
    child.kill();
  }
}
