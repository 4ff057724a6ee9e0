// Channel benchmark: clowder's channel against bare node:net, two processes on loopback, side by side.
//
//   npm run bench:channel                     (builds, then runs everything: ~3 minutes)
//   node bench/channel/run.mjs --quick        (after a build: 1 repetition of 1 s per row)
//   node bench/channel/run.mjs --rows=raw,channel/async --reps=1
//
// This process is the sender; it forks bench/channel/peer.mjs as the receiver. Every rate is the
// receiver's: messages and bytes its handler saw between two marks, over its own clock (what the
// sender queued is not delivery). After each row the sender waits until everything sent arrived.
//
// Rows (ids for --rows, which keeps rows whose id contains one of the comma-separated strings):
//   raw/100B raw/1KiB raw/64KiB   bare sockets, one socket.write per message, Nagle off
//   raw/pingpong                  1 KiB out, 1 KiB echoed back, one at a time
//   <v>/async/<size>              clowder send, options 8 (asynchronous), window of --window bytes
//   <v>/ack64/<size>              options 2 (use_ack), 64 acknowledged sends outstanding
//   <v>/rtt-ack  <v>/rtt-sync     one at a time 1 KiB send, options 2 / options 6: round trip
// with <v> = channel (no cluster key), mac (clusterKey, encrypt:false), enc (clusterKey, encrypt:true);
// their receiving handler borrows ({ borrow: true }: it reads each message's length and keeps
// nothing, as the raw sink does). keep/async/<size>: the same without borrow, so every message
// that spans socket reads is assembled in a buffer of its own.
//
// One channel pair per variant stays up for the whole run. Each repetition runs every row, rows that
// are compared back to back (raw/1KiB, channel/async/1KiB, mac/async/1KiB, enc/async/1KiB, ...), so
// drift on a noisy machine hits them alike; tables show medians over repetitions, and "x raw" is the
// median of the per-repetition ratios. Results also go to bench/results/channel-<date>.json and .md.
//
// Options: --quick  --reps=N  --measure=MS  --warmup=MS  --lat-measure=MS  --lat-warmup=MS
//          --window=BYTES (async backpressure window, default 1 MiB)  --rows=a,b  --no-save
//          --profile (receiver runs with --cpu-prof into bench/channel/.prof/; see prof-summary.mjs)
// bench/README.md explains the rows, the targets and why the async sender needs a window.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep, setImmediate as yieldNow } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createChannel, silentLogger } from '../../dist/index.js';
import { median } from '../lib/stats.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

// ---- options ------------------------------------------------------------------------------------

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(a);
    if (!m) {
      console.error(`unknown argument ${a}`);
      process.exit(2);
    }
    return [m[1], m[2] ?? true];
  }),
);
const known = new Set([
  'quick',
  'reps',
  'measure',
  'warmup',
  'lat-measure',
  'lat-warmup',
  'window',
  'rows',
  'no-save',
  'profile',
  'help',
]);
for (const k of Object.keys(args)) {
  if (!known.has(k)) {
    console.error(`unknown option --${k} (known: ${[...known].map((x) => `--${x}`).join(' ')})`);
    process.exit(2);
  }
}
if (args.help) {
  console.log(
    'usage: node bench/channel/run.mjs [--quick] [--reps=N] [--measure=MS] [--warmup=MS] [--lat-measure=MS] [--lat-warmup=MS] [--window=BYTES] [--rows=a,b] [--no-save] [--profile]',
  );
  process.exit(0);
}
const quick = args.quick === true;
const num = (k, d) => (args[k] === undefined ? d : Number(args[k]));
const REPS = num('reps', quick ? 1 : 3);
const MEASURE_MS = num('measure', quick ? 1000 : 1500);
const WARMUP_MS = num('warmup', quick ? 300 : 400);
const LAT_MEASURE_MS = num('lat-measure', quick ? 700 : 1000);
const LAT_WARMUP_MS = num('lat-warmup', 300);
const WINDOW = num('window', 1024 * 1024);
const FILTERS =
  typeof args.rows === 'string'
    ? args.rows
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : [];
const ACK_WINDOW = 64;
const DRAIN_TIMEOUT_MS = 20_000;
const CLUSTER_KEY = 'bench-cluster-key-0123456789abcdef-0123456789';

// ---- rows ---------------------------------------------------------------------------------------

const SIZES = [
  { name: '100B', bytes: 100 },
  { name: '1KiB', bytes: 1024 },
  { name: '64KiB', bytes: 64 * 1024 },
];
const VARIANTS = [
  { name: 'raw', label: 'raw node:net' },
  { name: 'channel', label: 'clowder', auth: undefined },
  { name: 'mac', label: 'clowder + clusterKey (MAC)', auth: { encrypt: false } },
  { name: 'enc', label: 'clowder + clusterKey (AES-GCM)', auth: { encrypt: true } },
  // The receiver's handler registered without { borrow: true }: every message must stay valid
  // after the call, so one that spans socket reads gets a buffer of its own (async rows only).
  { name: 'keep', label: 'clowder, handler keeps messages', auth: undefined, keep: true },
];
const CHANNELS = VARIANTS.filter((v) => v.name !== 'raw');

/**
 * Every row, in run (and table) order: rows that are compared with each other run back to back
 * (raw/1KiB, channel/async/1KiB, mac/async/1KiB, ...), so a burst of noise hits them alike.
 */
function allRows() {
  const rows = [];
  for (const size of SIZES) {
    rows.push({ id: `raw/${size.name}`, variant: VARIANTS[0], kind: 'tput', mode: 'raw', size });
    for (const mode of ['async', 'ack']) {
      for (const v of CHANNELS) {
        if (v.keep && mode !== 'async') continue;
        rows.push({
          id: `${v.name}/${mode === 'ack' ? `ack${ACK_WINDOW}` : 'async'}/${size.name}`,
          variant: v,
          kind: 'tput',
          mode,
          size,
        });
      }
    }
  }
  rows.push({ id: 'raw/pingpong', variant: VARIANTS[0], kind: 'lat', mode: 'raw', size: SIZES[1] });
  for (const mode of ['ack', 'sync']) {
    for (const v of CHANNELS) {
      if (!v.keep) rows.push({ id: `${v.name}/rtt-${mode}`, variant: v, kind: 'lat', mode, size: SIZES[1] });
    }
  }
  return rows;
}
const selected = (row) => FILTERS.length === 0 || FILTERS.some((f) => row.id.includes(f));
const ROWS = allRows().filter(selected);
if (ROWS.length === 0) {
  console.error(
    `--rows=${args.rows} matches no row; rows are: ${allRows()
      .map((r) => r.id)
      .join(' ')}`,
  );
  process.exit(2);
}

// ---- the receiver process -----------------------------------------------------------------------

let child;
let nextId = 1;
const waiting = new Map();

async function startPeer() {
  const execArgv = [];
  if (args.profile) {
    const dir = join(here, '.prof');
    mkdirSync(dir, { recursive: true });
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
  }
  child = fork(join(here, 'peer.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  child.on('message', (m) => {
    if (m?.id === undefined) return;
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (m.ok) w.resolve(m);
    else w.reject(new Error(`peer: ${m.error}`));
  });
  child.on('exit', (code, signal) => {
    for (const w of waiting.values()) w.reject(new Error(`peer exited (${code ?? signal})`));
    waiting.clear();
  });
  const [ready] = await Promise.race([
    once(child, 'message'),
    sleep(10_000).then(() => {
      throw new Error('peer did not start within 10 s');
    }),
  ]);
  if (!ready?.ready) throw new Error('unexpected first message from peer');
}

function call(cmd, params = {}, timeoutMs = 30_000) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      waiting.delete(id);
      reject(new Error(`peer did not answer ${cmd} within ${timeoutMs} ms`));
    }, timeoutMs);
    waiting.set(id, {
      resolve: (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      reject: (e) => {
        clearTimeout(timer);
        reject(e);
      },
    });
    child.send({ id, cmd, ...params });
  });
}

async function stopPeer() {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  if (args.profile) {
    // A clean exit lets --cpu-prof write the receiver's profile.
    await call('exit', {}, 10_000).catch(() => {});
    await Promise.race([once(child, 'exit'), sleep(5000)]);
  }
  if (child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

// ---- helpers ------------------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Calls `yieldNow` every ~2 ms of a busy loop so timers, IPC and socket callbacks get their turn. */
function yielder() {
  let last = performance.now();
  return () => {
    const now = performance.now();
    if (now - last < 2) return undefined;
    last = now;
    return yieldNow();
  };
}

/**
 * Runs `loop(isRunning)` (an async sender loop that returns what it sent), marks the receiver after
 * the warm-up and after the measurement, stops the loop, waits until the receiver got everything.
 */
async function stream(loop, expectReceived) {
  // Let anything still in flight from an earlier row arrive before counting from zero.
  for (let prev = -1, i = 0; i < 100; i++) {
    const { bytes } = await call('mark');
    if (bytes === prev) break;
    prev = bytes;
    await sleep(30);
  }
  await call('reset');
  let running = true;
  let loopError;
  const done = loop(() => running).catch((err) => {
    loopError = err;
    running = false;
    return 0;
  });
  await sleep(WARMUP_MS);
  const a = await call('mark');
  const ca = process.cpuUsage();
  const ta = performance.now();
  await sleep(MEASURE_MS);
  const b = await call('mark');
  const cb = process.cpuUsage(ca);
  const tb = performance.now();
  running = false;
  const sent = await done;
  if (loopError) throw loopError;
  const want = expectReceived(sent);
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  let got;
  for (;;) {
    got = await call('mark');
    if (got.msgs >= want.msgs && got.bytes >= want.bytes) break;
    if (performance.now() > deadline) break;
    await sleep(10);
  }
  const secs = (b.t - a.t) / 1000;
  return {
    msgsPerSec: (b.msgs - a.msgs) / secs,
    mbPerSec: (b.bytes - a.bytes) / secs / 1e6,
    windowSecs: secs,
    // CPU use over the measured window (100 = one core busy): who is the bottleneck.
    senderCpu: (100 * (cb.user + cb.system)) / 1000 / (tb - ta),
    receiverCpu: (100 * (b.cpuUs - a.cpuUs)) / 1000 / (b.t - a.t),
    sent: want.n ?? want.msgs,
    missing: Math.max(0, want.msgs - got.msgs),
    missingBytes: Math.max(0, want.bytes - got.bytes),
  };
}

/** One-at-a-time round trips: `once()` resolves after one round trip. Returns p50/p99 in µs. */
async function roundTrips(one) {
  let end = performance.now() + LAT_WARMUP_MS;
  while (performance.now() < end) await one();
  const samples = [];
  end = performance.now() + LAT_MEASURE_MS;
  while (performance.now() < end && samples.length < 1_000_000) {
    const t0 = process.hrtime.bigint();
    await one();
    samples.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  samples.sort((x, y) => x - y);
  return {
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    max: samples[samples.length - 1],
    samples: samples.length,
  };
}

// ---- raw node:net -------------------------------------------------------------------------------

async function rawConnect(port) {
  const sock = connect({ host: '127.0.0.1', port, noDelay: true });
  await once(sock, 'connect');
  sock.on('error', () => {});
  return sock;
}

async function rawThroughput(row) {
  const { port } = await call('rawSink');
  const sock = await rawConnect(port);
  const size = row.size.bytes;
  const buf = Buffer.alloc(size, 0xa5);
  try {
    return await stream(
      async (running) => {
        const maybeYield = yielder();
        let n = 0;
        while (running()) {
          for (let i = 0; i < 32; i++) {
            n++;
            if (!sock.write(buf)) {
              await once(sock, 'drain');
              break;
            }
          }
          const y = maybeYield();
          if (y) await y;
        }
        return n;
      },
      (n) => ({ msgs: 0, bytes: n * size, n }),
    ).then((r) => ({
      ...r,
      msgsPerSec: (r.mbPerSec * 1e6) / size,
      sent: r.sent,
      missing: Math.ceil(r.missingBytes / size),
    }));
  } finally {
    sock.destroy();
    await call('rawStop');
  }
}

async function rawPingPong(row) {
  const size = row.size.bytes;
  const { port } = await call('rawEcho', { size });
  const sock = await rawConnect(port);
  const buf = Buffer.alloc(size, 0xa5);
  let got = 0;
  let wake;
  sock.on('data', (chunk) => {
    got += chunk.length;
    if (got >= size) {
      got -= size;
      wake();
    }
  });
  try {
    return await roundTrips(
      () =>
        new Promise((resolve) => {
          wake = resolve;
          sock.write(buf);
        }),
    );
  } finally {
    sock.destroy();
    await call('rawStop');
  }
}

// ---- clowder channel ----------------------------------------------------------------------------

async function startChannels(variant) {
  const [pa, pb] = [await freePort(), await freePort()];
  const auth = variant.auth ? { clusterKey: CLUSTER_KEY, encrypt: variant.auth.encrypt } : {};
  await call('channelStart', { key: variant.name, port: pb, peerPort: pa, keep: variant.keep === true, ...auth });
  const ch = createChannel(
    {
      name: 'bench-sender',
      receiver: { port: pa, autoBind: 1 },
      membership: { type: 'static', members: [`127.0.0.1:${pa}`, `127.0.0.1:${pb}`] },
      ...auth,
    },
    { logger: silentLogger },
  );
  const sendErrors = { n: 0 };
  ch.on('sendError', () => sendErrors.n++);
  const found = new Promise((resolve) => {
    ch.on('memberAdded', (m) => {
      if (m.port === pb) resolve(m);
    });
  });
  await ch.start();
  const peer =
    ch.members().find((m) => m.port === pb) ??
    (await Promise.race([
      found,
      sleep(10_000).then(() => {
        throw new Error(`receiver 127.0.0.1:${pb} did not show up as a member within 10 s`);
      }),
    ]));
  // One acknowledged message, so the data connection is open before anything is measured.
  await ch.send(peer, new Uint8Array(1), { options: 2 });
  return { ch, peer, sendErrors, key: variant.name };
}

async function stopChannels(ctx) {
  await ctx.ch.stop();
  await call('channelStop', { key: ctx.key });
}

async function channelThroughput(ctx, row) {
  const { ch, peer } = ctx;
  const size = row.size.bytes;
  const payload = new Uint8Array(size).fill(0xa5);
  const expect = (n) => ({ msgs: n, bytes: n * size });
  if (row.mode === 'async') {
    return stream(async (running) => {
      const maybeYield = yielder();
      let n = 0;
      while (running()) {
        for (let i = 0; i < 32; i++) {
          await ch.send(peer, payload, { options: 8 });
          n++;
          if (ch.pendingBytes(peer) > WINDOW) await ch.flush();
        }
        const y = maybeYield();
        if (y) await y;
      }
      await ch.flush();
      return n;
    }, expect);
  }
  return stream(async (running) => {
    let n = 0;
    const worker = async () => {
      while (running()) {
        await ch.send(peer, payload, { options: 2 });
        n++;
      }
    };
    await Promise.all(Array.from({ length: ACK_WINDOW }, worker));
    return n;
  }, expect);
}

async function channelLatency(ctx, row) {
  const { ch, peer } = ctx;
  const payload = new Uint8Array(row.size.bytes).fill(0xa5);
  const opts = { options: row.mode === 'sync' ? 6 : 2 };
  return roundTrips(() => ch.send(peer, payload, opts));
}

// ---- main ---------------------------------------------------------------------------------------

const results = new Map(); // id -> { row, runs: [] } (runs[rep - 1])

function record(row, rep, r) {
  let e = results.get(row.id);
  if (!e) results.set(row.id, (e = { row, runs: [] }));
  e.runs[rep - 1] = r;
  const txt = r.failed
    ? `FAILED: ${r.failed}`
    : row.kind === 'lat'
      ? `p50 ${r.p50.toFixed(0)} µs  p99 ${r.p99.toFixed(0)} µs  (${r.samples} samples)`
      : `${Math.round(r.msgsPerSec).toLocaleString('en-US')} msgs/s  ${r.mbPerSec.toFixed(1)} MB/s  cpu sender ${r.senderCpu.toFixed(0)}% receiver ${r.receiverCpu.toFixed(0)}%${r.missing ? `  MISSING ${r.missing} of ${r.sent}` : ''}`;
  process.stderr.write(`  ${row.id.padEnd(22)} ${txt}\n`);
}

async function runRow(row, channels) {
  if (row.mode === 'raw') return row.kind === 'lat' ? rawPingPong(row) : rawThroughput(row);
  const ctx = channels.get(row.variant.name);
  try {
    const r = row.kind === 'lat' ? await channelLatency(ctx, row) : await channelThroughput(ctx, row);
    if (ctx.sendErrors.n > 0) r.sendErrors = ctx.sendErrors.n;
    return r;
  } catch (err) {
    // A failed send (e.g. ERR_CLOWDER_QUEUE_FULL) fails this run of the row, not the benchmark.
    const inner = err?.faulty?.[0]?.error;
    await ctx.ch.flush();
    return {
      failed: `${err?.code ?? err?.message}${inner ? ` (${inner.code}: ${inner.message})` : ''}`,
      msgsPerSec: NaN,
      mbPerSec: NaN,
      p50: NaN,
      p99: NaN,
    };
  }
}

/** Median over repetitions of a / b, each repetition paired with itself. */
function pairedRatio(a, b, key) {
  if (!a || !b) return NaN;
  return median(a.runs.map((r, i) => (r && b.runs[i] ? r[key] / b.runs[i][key] : NaN)));
}

function summarize() {
  const get = (id) => results.get(id);
  const tput = [];
  const lat = [];
  for (const row of ROWS) {
    const e = get(row.id);
    if (!e) continue;
    const runs = e.runs.filter(Boolean);
    const failed = runs.filter((r) => r.failed).map((r) => r.failed);
    if (row.kind === 'tput') {
      const raw = get(`raw/${row.size.name}`);
      tput.push({
        id: row.id,
        variant: row.variant.name,
        mode: row.mode,
        size: row.size.bytes,
        msgsPerSec: median(runs.map((r) => r.msgsPerSec)),
        mbPerSec: median(runs.map((r) => r.mbPerSec)),
        ratioToRaw: pairedRatio(e, raw, 'msgsPerSec'),
        senderCpu: median(runs.map((r) => r.senderCpu)),
        receiverCpu: median(runs.map((r) => r.receiverCpu)),
        runs: runs.map((r) => Math.round(r.msgsPerSec)),
        missing: runs.reduce((n, r) => n + (r.missing ?? 0), 0),
        failed,
      });
    } else {
      const raw = get('raw/pingpong');
      lat.push({
        id: row.id,
        variant: row.variant.name,
        mode: row.mode,
        size: row.size.bytes,
        p50Us: median(runs.map((r) => r.p50)),
        p99Us: median(runs.map((r) => r.p99)),
        p50Ratio: pairedRatio(e, raw, 'p50'),
        p99Ratio: pairedRatio(e, raw, 'p99'),
        runs: runs.map((r) => ({ p50: Math.round(r.p50), p99: Math.round(r.p99), samples: r.samples })),
        failed,
      });
    }
  }
  const t = (id) => tput.find((x) => x.id === id);
  const l = (id) => lat.find((x) => x.id === id);
  const targets = [];
  const target = (name, value, limit, pass, unit) =>
    targets.push({ name, value, limit, unit, result: Number.isFinite(value) ? (pass ? 'PASS' : 'MISS') : 'n/a' });
  {
    const r = t('channel/async/1KiB')?.ratioToRaw;
    target('async 1 KiB msgs/s >= 0.7 x raw', r, 0.7, r >= 0.7, 'x raw');
  }
  {
    const r = t('channel/async/64KiB')?.ratioToRaw;
    target('async 64 KiB MB/s >= 0.75 x raw', r, 0.75, r >= 0.75, 'x raw');
  }
  {
    const r = l('channel/rtt-ack')?.p50Ratio;
    target('ack round trip p50 <= 3 x raw ping-pong p50', r, 3, r <= 3, 'x raw');
  }
  {
    const v = l('channel/rtt-ack')?.p99Us;
    target('ack round trip p99 <= 1 ms', v, 1000, v <= 1000, 'µs');
  }
  for (const v of ['mac', 'enc']) {
    const r = pairedRatio(get(`${v}/async/1KiB`), get('channel/async/1KiB'), 'msgsPerSec');
    target(`auth (${v === 'mac' ? 'MAC only' : 'AES-GCM'}) async 1 KiB >= 0.8 x auth off`, r, 0.8, r >= 0.8, 'x off');
  }
  return { tput, lat, targets };
}

const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');
const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');

function table(head, rows, align) {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) =>
    cells.map((c, i) => (align[i] === 'r' ? String(c).padStart(w[i]) : String(c).padEnd(w[i]))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

function mdTable(head, rows, align) {
  return [
    `| ${head.join(' | ')} |`,
    `|${align.map((a) => (a === 'r' ? '---:' : ':---')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

function render(summary) {
  const tHead = ['row', 'msgs/s', 'MB/s', 'x raw', 'cpu snd/rcv %', 'runs (msgs/s)'];
  const tRows = summary.tput.map((r) => [
    r.id + (r.missing ? ' (!missing)' : '') + (r.failed.length ? ` (${r.failed.length} failed)` : ''),
    fmtInt(r.msgsPerSec),
    fmt(r.mbPerSec),
    r.variant === 'raw' ? '1.00' : fmt(r.ratioToRaw, 2),
    `${fmt(r.senderCpu, 0)}/${fmt(r.receiverCpu, 0)}`,
    r.runs.map(fmtInt).join(' / '),
  ]);
  const tAlign = ['l', 'r', 'r', 'r', 'r', 'l'];
  const lHead = ['row (1 KiB)', 'p50 µs', 'p99 µs', 'p50 x raw', 'p99 x raw', 'runs p50/p99'];
  const lRows = summary.lat.map((r) => [
    r.id + (r.failed.length ? ` (${r.failed.length} failed)` : ''),
    fmt(r.p50Us, 0),
    fmt(r.p99Us, 0),
    r.variant === 'raw' ? '1.00' : fmt(r.p50Ratio, 2),
    r.variant === 'raw' ? '1.00' : fmt(r.p99Ratio, 2),
    r.runs.map((x) => `${x.p50}/${x.p99}`).join(' '),
  ]);
  const lAlign = ['l', 'r', 'r', 'r', 'r', 'l'];
  const gHead = ['target', 'measured', 'limit', 'result'];
  const gRows = summary.targets.map((g) => [
    g.name,
    `${fmt(g.value, g.unit === 'µs' ? 0 : 2)} ${g.unit}`,
    `${g.limit} ${g.unit}`,
    g.result,
  ]);
  const gAlign = ['l', 'r', 'r', 'l'];
  return {
    text: [table(tHead, tRows, tAlign), '', table(lHead, lRows, lAlign), '', table(gHead, gRows, gAlign)].join('\n'),
    md: [
      '### Throughput (receiver-side, medians)',
      '',
      mdTable(tHead, tRows, tAlign),
      '',
      '### Round-trip latency, 1 KiB, one at a time',
      '',
      mdTable(lHead, lRows, lAlign),
      '',
      '### Targets',
      '',
      mdTable(gHead, gRows, gAlign),
    ].join('\n'),
  };
}

function machine() {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    totalMemGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    loadavgAtStart: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

async function main() {
  const started = new Date();
  const info = machine();
  const settings = {
    reps: REPS,
    warmupMs: WARMUP_MS,
    measureMs: MEASURE_MS,
    latWarmupMs: LAT_WARMUP_MS,
    latMeasureMs: LAT_MEASURE_MS,
    asyncWindowBytes: WINDOW,
    ackWindow: ACK_WINDOW,
    rows: FILTERS,
  };
  console.log(
    `clowder channel benchmark: ${info.cpuModel} x${info.cpus}, node ${info.node}, load ${info.loadavgAtStart.join(' ')}`,
  );
  console.log(
    `${REPS} repetition(s); throughput ${WARMUP_MS} ms warm-up + ${MEASURE_MS} ms; latency ${LAT_WARMUP_MS} + ${LAT_MEASURE_MS} ms; async window ${WINDOW} B, ack window ${ACK_WINDOW}`,
  );
  await startPeer();
  const channels = new Map();
  try {
    for (const v of CHANNELS) if (ROWS.some((r) => r.variant === v)) channels.set(v.name, await startChannels(v));
    for (let rep = 1; rep <= REPS; rep++) {
      process.stderr.write(`repetition ${rep}/${REPS}\n`);
      for (const row of ROWS) record(row, rep, await runRow(row, channels));
    }
  } finally {
    for (const ctx of channels.values()) await stopChannels(ctx).catch(() => {});
  }
  const summary = summarize();
  const out = render(summary);
  const elapsed = (Date.now() - started.getTime()) / 1000;
  console.log(
    `\n${out.text}\n\n(${elapsed.toFixed(0)} s; MB = 10^6 bytes of payload; "x raw" compares msgs/s with the raw row of the same size, latency with raw ping-pong; cpu = % of one core used by sender/receiver during the measured window)`,
  );
  if (!args['no-save']) {
    const dir = join(root, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const stamp = started
      .toISOString()
      .replace(/:/g, '-')
      .replace(/\.\d+Z$/, 'Z');
    const base = join(dir, `channel-${stamp}`);
    const json = {
      benchmark: 'channel',
      date: started.toISOString(),
      elapsedSecs: elapsed,
      machine: info,
      settings,
      ...summary,
    };
    writeFileSync(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`);
    writeFileSync(
      `${base}.md`,
      [
        `## clowder channel benchmark, ${started.toISOString()}`,
        '',
        `${info.cpuModel} x${info.cpus}, node ${info.node}, ${info.platform}, load at start ${info.loadavgAtStart.join(' ')}.`,
        `${REPS} repetition(s), medians; throughput ${WARMUP_MS} ms warm-up + ${MEASURE_MS} ms measured on the receiver; latency ${LAT_WARMUP_MS} + ${LAT_MEASURE_MS} ms; async window ${WINDOW} B; ack window ${ACK_WINDOW}.`,
        '',
        out.md,
        '',
      ].join('\n'),
    );
    console.log(`results: ${relative(process.cwd(), base)}.json, .md`);
  }
}

let exitCode = 0;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    if (child?.pid && child.exitCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {}
    }
    process.exit(130);
  });
}
try {
  await main();
} catch (err) {
  console.error(err);
  exitCode = 1;
} finally {
  await stopPeer();
}
process.exit(exitCode);
