// The shared workload's lag probe (/work/shared/workload/client.mjs lag), mirrored: the same
// requests over the same keep-alive agent (write /app/counter on A, then at once read /app/read on B,
// fresh when B shows the count A answered), plus one record per probe for the visibility join:
// when the client had A's answer, on the machine's monotonic clock (process.hrtime, CLOCK_MONOTONIC,
// shared by every process on the host). run.mjs matches these against the times at which B applied
// each count (its attribute listener) to get the replication lag itself: how long after the client
// saw the write acknowledged the new value was visible on B, whatever B's HTTP read costs.
// usage: node lag-client.mjs --write-port A --read-port B --cookies FILE [--n 1000] --out FILE.json
import fs from 'node:fs';
import http from 'node:http';
import { percentile as pct } from '../lib/stats.mjs';

const HOST = '127.0.0.1';
const opt = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function get(port, path, cookie) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const req = http.get({ host: HOST, port, path, agent, headers: cookie ? { cookie } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => {
        const t1 = process.hrtime.bigint();
        resolve({ status: res.statusCode, body, t1, ms: Number(t1 - t0) / 1e6 });
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, error: e.message, t1: process.hrtime.bigint(), ms: 0 }));
  });
}

const kv = (body) =>
  Object.fromEntries(
    (body || '')
      .trim()
      .split(/\s+/)
      .filter((p) => p.includes('='))
      .map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]),
  );

const cookies = fs.readFileSync(opt.cookies, 'utf8').split('\n').filter(Boolean);
const n = Number(opt.n ?? 1000);
const a = Number(opt['write-port']);
const b = Number(opt['read-port']);
let fresh = 0;
let stale = 0;
let errors = 0;
const gap = [];
/** [sessionId, count, ns when the client had A's answer] per acknowledged write. */
const writes = [];
for (let i = 0; i < n; i++) {
  const c = cookies[i % cookies.length];
  const w = await get(a, '/app/counter', c);
  const r = await get(b, '/app/read', c);
  gap.push(r.ms);
  if (w.status === 200) {
    const f = kv(w.body);
    writes.push([f.id, Number(f.count), Number(w.t1)]);
  }
  if (w.status !== 200 || r.status !== 200) {
    errors++;
    continue;
  }
  if (kv(w.body).count === kv(r.body).count) fresh++;
  else stale++;
}
fs.writeFileSync(opt.out, JSON.stringify(writes));
agent.destroy();
console.log(
  `probes=${n} fresh=${fresh} stale=${stale} errors=${errors} ` +
    `read_after_write_p50_ms=${pct(gap, 50).toFixed(3)} p99_ms=${pct(gap, 99).toFixed(3)}`,
);
