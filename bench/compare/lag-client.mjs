// The shared workload's lag probe (../shared/workload/client.mjs lag), mirrored: the same
// requests over the same keep-alive agent (write /app/counter on A, then at once read /app/read on B,
// fresh when B shows the count A answered), plus one record per probe for the visibility join:
// when the client had A's answer, on the machine's monotonic clock (process.hrtime, CLOCK_MONOTONIC,
// shared by every process on the host). run.mjs matches these against the times at which B applied
// each count (its attribute listener) to get the replication lag itself: how long after the client
// saw the write acknowledged the new value was visible on B, whatever B's HTTP read costs.
// With --warmup-ms, the same probes run that long first, unmeasured; --out then also holds the
// first n of the warm-up's writes (`cold`: the lag of processes that just started).
// usage: node lag-client.mjs --write-port A --read-port B --cookies FILE [--n 1000] [--warmup-ms M]
//          --out FILE.json   (FILE.json: { writes, cold })
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
const warmupMs = Number(opt['warmup-ms'] ?? 0);
const a = Number(opt['write-port']);
const b = Number(opt['read-port']);

/**
 * Runs probes while `more(done)` holds, starting at cookie `from`; each acknowledged write goes
 * into `writes` as [sessionId, count, ns when the client had A's answer]. Returns what the client
 * saw: probes done, fresh, stale, errors and each read's time.
 */
async function probes(from, writes, more) {
  const seen = { done: 0, fresh: 0, stale: 0, errors: 0, gap: [] };
  for (let i = from; more(seen.done); i++) {
    const c = cookies[i % cookies.length];
    const w = await get(a, '/app/counter', c);
    const r = await get(b, '/app/read', c);
    seen.done++;
    seen.gap.push(r.ms);
    if (w.status === 200) {
      const f = kv(w.body);
      writes.push([f.id, Number(f.count), Number(w.t1)]);
    }
    if (w.status !== 200 || r.status !== 200) seen.errors++;
    else if (kv(w.body).count === kv(r.body).count) seen.fresh++;
    else seen.stale++;
  }
  return seen;
}

// The warm-up: the same probes for --warmup-ms, unmeasured, as wrk warms up before a row is
// measured (JIT compilation on V8's background threads of every process here is otherwise part
// of the tail). Its first `n` writes are kept apart: the lag of processes that just started.
const cold = [];
let warmed = 0;
if (warmupMs > 0) {
  const until = process.hrtime.bigint() + BigInt(Math.round(warmupMs * 1e6));
  const w = await probes(0, cold, () => process.hrtime.bigint() < until);
  warmed = w.done;
  cold.length = Math.min(cold.length, n);
}
const writes = [];
const { fresh, stale, errors, gap } = await probes(warmed, writes, (done) => done < n);
fs.writeFileSync(opt.out, JSON.stringify({ writes, cold }));
agent.destroy();
console.log(
  `probes=${n} fresh=${fresh} stale=${stale} errors=${errors} ` +
    `read_after_write_p50_ms=${pct(gap, 50).toFixed(3)} p99_ms=${pct(gap, 99).toFixed(3)} warmup_probes=${warmed}`,
);
