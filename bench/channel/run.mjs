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
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep, setImmediate as yieldNow } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createChannel, silentLogger } from '../../dist/index.js';
import { parseOptions } from '../lib/args.mjs';
import { machine } from '../lib/machine.mjs';
import { freePorts, installReaper } from '../lib/proc.mjs';
import { fmt, fx, mdTable, reportHead, resultsJson, saveResults, textTable } from '../lib/report.mjs';
import { median, percentile } from '../lib/stats.mjs';
import { waitUntil, waitUntilOrNot } from '../lib/wait.mjs';
import { forkWorker } from '../lib/worker.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const T0 = performance.now();

// ---- options ------------------------------------------------------------------------------------

const { args, num } = parseOptions(
  ['quick', 'reps', 'measure', 'warmup', 'lat-measure', 'lat-warmup', 'window', 'rows', 'no-save', 'profile', 'help'],
  'usage: node bench/channel/run.mjs [--quick] [--reps=N] [--measure=MS] [--warmup=MS] [--lat-measure=MS] [--lat-warmup=MS] [--window=BYTES] [--rows=a,b] [--no-save] [--profile]',
);
const quick = args.quick === true;
const REPS = num('reps', quick ? 1 : 3, { positive: true });
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
 * (raw/1KiB, channel/async/1KiB, mac/async/1KiB, ...), so a burst of noise hits them alike. A row:
 * { id, variant, kind: 'tput' (receiver's msgs/s) | 'lat' (round trips), mode, size }; MEASURE
 * says how each kind and mode is measured.
 */
function allRows() {
  const rows = [];
  for (const size of SIZES) {
    rows.push({ id: `raw/${size.name}`, variant: VARIANTS[0], kind: 'tput', mode: 'raw', size });
    for (const mode of ['async', 'ack']) {
      for (const v of CHANNELS) {
        if (v.keep && mode !== 'async') continue;
        const id = `${v.name}/${mode === 'ack' ? `ack${ACK_WINDOW}` : 'async'}/${size.name}`;
        rows.push({ id, variant: v, kind: 'tput', mode, size });
      }
    }
  }
  rows.push({ id: 'raw/pingpong', variant: VARIANTS[0], kind: 'lat', mode: 'raw', size: SIZES[1] });
  for (const mode of ['ack', 'sync'])
    for (const v of CHANNELS)
      if (!v.keep) rows.push({ id: `${v.name}/rtt-${mode}`, variant: v, kind: 'lat', mode, size: SIZES[1] });
  return rows;
}
const ROWS = allRows().filter((row) => FILTERS.length === 0 || FILTERS.some((f) => row.id.includes(f)));
if (ROWS.length === 0) {
  console.error(
    `--rows=${args.rows} matches no row; rows are: ${allRows()
      .map((r) => r.id)
      .join(' ')}`,
  );
  process.exit(2);
}

// ---- the receiver process -----------------------------------------------------------------------

installReaper('bench/channel');
let peer;

async function startPeer() {
  const execArgv = [];
  if (args.profile) {
    const dir = join(here, '.prof');
    mkdirSync(dir, { recursive: true });
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
  }
  peer = forkWorker(join(here, 'peer.mjs'), { name: 'peer', execArgv, readyTimeoutMs: 10_000 });
  await peer.ready;
}

const call = (cmd, params, timeoutMs) => peer.call(cmd, params, timeoutMs);

// A clean exit (--profile) lets --cpu-prof write the receiver's profile.
const stopPeer = () => peer?.stop(args.profile ? { command: 'exit' } : { signal: 'SIGKILL' });

// ---- measuring ----------------------------------------------------------------------------------

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
 * the warm-up and after the measurement (the two sleeps are the measurement), stops the loop, waits
 * until the receiver got everything.
 */
async function stream(loop, expectReceived) {
  // Let anything still in flight from an earlier row arrive before counting from zero: the
  // receiver's byte count stops moving.
  let prev = -1;
  await waitUntilOrNot(
    async () => {
      const { bytes } = await call('mark');
      const still = bytes === prev;
      prev = bytes;
      return still;
    },
    { timeoutMs: 3000, intervalMs: 30 },
  );
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
  let got;
  await waitUntilOrNot(
    async () => {
      got = await call('mark');
      return got.msgs >= want.msgs && got.bytes >= want.bytes;
    },
    { timeoutMs: DRAIN_TIMEOUT_MS, intervalMs: 10 },
  );
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

/** One-at-a-time round trips: `one()` resolves after one round trip. Returns p50/p99 in µs. */
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
  return {
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    max: percentile(samples, 100),
    samples: samples.length,
  };
}

/** A bare socket to the receiver's raw server (`cmd`: rawSink or rawEcho), closed after `use`. */
async function withRawSocket(cmd, params, use) {
  const { port } = await call(cmd, params);
  const sock = connect({ host: '127.0.0.1', port, noDelay: true });
  await once(sock, 'connect');
  sock.on('error', () => {});
  try {
    return await use(sock);
  } finally {
    sock.destroy();
    await call('rawStop');
  }
}

/** How each kind and mode of row is measured: (row, ctx) → one repetition's result. */
const MEASURE = {
  'tput/raw': (row) =>
    withRawSocket('rawSink', {}, async (sock) => {
      const size = row.size.bytes;
      const buf = Buffer.alloc(size, 0xa5);
      const r = await stream(
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
      );
      return { ...r, msgsPerSec: (r.mbPerSec * 1e6) / size, missing: Math.ceil(r.missingBytes / size) };
    }),
  'lat/raw': (row) => {
    const size = row.size.bytes;
    return withRawSocket('rawEcho', { size }, (sock) => {
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
      return roundTrips(
        () =>
          new Promise((resolve) => {
            wake = resolve;
            sock.write(buf);
          }),
      );
    });
  },
  'tput/async': (row, { ch, peer: to }) => {
    const payload = new Uint8Array(row.size.bytes).fill(0xa5);
    return stream(
      async (running) => {
        const maybeYield = yielder();
        let n = 0;
        while (running()) {
          for (let i = 0; i < 32; i++) {
            await ch.send(to, payload, { options: 8 });
            n++;
            if (ch.pendingBytes(to) > WINDOW) await ch.flush();
          }
          const y = maybeYield();
          if (y) await y;
        }
        await ch.flush();
        return n;
      },
      (n) => ({ msgs: n, bytes: n * row.size.bytes }),
    );
  },
  'tput/ack': (row, { ch, peer: to }) => {
    const payload = new Uint8Array(row.size.bytes).fill(0xa5);
    return stream(
      async (running) => {
        let n = 0;
        const worker = async () => {
          while (running()) {
            await ch.send(to, payload, { options: 2 });
            n++;
          }
        };
        await Promise.all(Array.from({ length: ACK_WINDOW }, worker));
        return n;
      },
      (n) => ({ msgs: n, bytes: n * row.size.bytes }),
    );
  },
  'lat/ack': (row, { ch, peer: to }) =>
    roundTrips(() => ch.send(to, new Uint8Array(row.size.bytes).fill(0xa5), { options: 2 })),
  'lat/sync': (row, { ch, peer: to }) =>
    roundTrips(() => ch.send(to, new Uint8Array(row.size.bytes).fill(0xa5), { options: 6 })),
};

// ---- clowder channels ---------------------------------------------------------------------------

/** A sender channel here and a receiver channel in the peer for `variant`, connected. */
async function startChannels(variant) {
  const [pa, pb] = await freePorts(2);
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
  await ch.start();
  const to = await waitUntil(() => ch.members().find((m) => m.port === pb), {
    what: `receiver 127.0.0.1:${pb} shows up as a member`,
  });
  // One acknowledged message, so the data connection is open before anything is measured.
  await ch.send(to, new Uint8Array(1), { options: 2 });
  return { ch, peer: to, sendErrors, key: variant.name };
}

async function stopChannels(ctx) {
  await ctx.ch.stop();
  await call('channelStop', { key: ctx.key });
}

async function runRow(row, channels) {
  const measure = MEASURE[`${row.kind}/${row.mode}`];
  if (row.mode === 'raw') return measure(row);
  const ctx = channels.get(row.variant.name);
  try {
    const r = await measure(row, ctx);
    if (ctx.sendErrors.n > 0) r.sendErrors = ctx.sendErrors.n;
    return r;
  } catch (err) {
    // A failed send (e.g. ERR_CLOWDER_QUEUE_FULL) fails this run of the row, not the benchmark.
    const inner = err?.faulty?.[0]?.error;
    await ctx.ch.flush();
    const failed = `${err?.code ?? err?.message}${inner ? ` (${inner.code}: ${inner.message})` : ''}`;
    return { failed, msgsPerSec: NaN, mbPerSec: NaN, p50: NaN, p99: NaN };
  }
}

function logRound(row, r) {
  const txt = r.failed
    ? `FAILED: ${r.failed}`
    : row.kind === 'lat'
      ? `p50 ${r.p50.toFixed(0)} µs  p99 ${r.p99.toFixed(0)} µs  (${r.samples} samples)`
      : `${fmt(r.msgsPerSec)} msgs/s  ${r.mbPerSec.toFixed(1)} MB/s  cpu sender ${r.senderCpu.toFixed(0)}% receiver ${r.receiverCpu.toFixed(0)}%${r.missing ? `  MISSING ${r.missing} of ${r.sent}` : ''}`;
  process.stderr.write(`  ${row.id.padEnd(22)} ${txt}\n`);
}

// ---- summary and report -------------------------------------------------------------------------

/** Median over repetitions of a / b, each repetition paired with itself. */
function pairedRatio(a, b, key) {
  if (!a || !b) return NaN;
  return median(a.map((r, i) => (r && b[i] ? r[key] / b[i][key] : NaN)));
}

/** One entry per row in the results schema: medians, ratios to the raw row, and its rounds. */
function summarize(rounds) {
  const rows = ROWS.map((row) => {
    const rs = rounds.get(row.id) ?? [];
    const base = {
      row: row.id,
      kind: row.kind,
      variant: row.variant.name,
      mode: row.mode,
      size: row.size.bytes,
      failed: rs.filter((r) => r.failed).map((r) => r.failed),
      rounds: rs,
    };
    if (row.kind === 'tput') {
      const raw = rounds.get(`raw/${row.size.name}`);
      return {
        ...base,
        msgsPerSec: median(rs.map((r) => r.msgsPerSec)),
        mbPerSec: median(rs.map((r) => r.mbPerSec)),
        ratioToRaw: pairedRatio(rs, raw, 'msgsPerSec'),
        senderCpu: median(rs.map((r) => r.senderCpu)),
        receiverCpu: median(rs.map((r) => r.receiverCpu)),
        missing: rs.reduce((n, r) => n + (r.missing ?? 0), 0),
      };
    }
    const raw = rounds.get('raw/pingpong');
    return {
      ...base,
      p50Us: median(rs.map((r) => r.p50)),
      p99Us: median(rs.map((r) => r.p99)),
      p50Ratio: pairedRatio(rs, raw, 'p50'),
      p99Ratio: pairedRatio(rs, raw, 'p99'),
    };
  });
  const get = (id) => rows.find((x) => x.row === id);
  const targets = [];
  const target = (name, value, limit, ok, unit) =>
    targets.push({ name, value, limit, unit, pass: Number.isFinite(value) ? ok : null });
  let r = get('channel/async/1KiB')?.ratioToRaw;
  target('async 1 KiB msgs/s >= 0.7 x raw', r, 0.7, r >= 0.7, 'x raw');
  r = get('channel/async/64KiB')?.ratioToRaw;
  target('async 64 KiB MB/s >= 0.75 x raw', r, 0.75, r >= 0.75, 'x raw');
  r = get('channel/rtt-ack')?.p50Ratio;
  target('ack round trip p50 <= 3 x raw ping-pong p50', r, 3, r <= 3, 'x raw');
  r = get('channel/rtt-ack')?.p99Us;
  target('ack round trip p99 <= 1 ms', r, 1000, r <= 1000, 'µs');
  for (const v of ['mac', 'enc']) {
    r = pairedRatio(rounds.get(`${v}/async/1KiB`), rounds.get('channel/async/1KiB'), 'msgsPerSec');
    target(`auth (${v === 'mac' ? 'MAC only' : 'AES-GCM'}) async 1 KiB >= 0.8 x auth off`, r, 0.8, r >= 0.8, 'x off');
  }
  for (const t of targets) t.detail = `${fx(t.value, t.unit === 'µs' ? 0 : 2)} ${t.unit} (limit ${t.limit} ${t.unit})`;
  return { rows, targets };
}

/** The three tables (throughput, latency, targets) as [head, rows, align]. */
function tables({ rows, targets }) {
  const tput = rows.filter((r) => r.kind === 'tput');
  const lat = rows.filter((r) => r.kind === 'lat');
  const isRaw = (r) => r.variant === 'raw';
  return [
    [
      '### Throughput (receiver-side, medians)',
      ['row', 'msgs/s', 'MB/s', 'x raw', 'cpu snd/rcv %', 'runs (msgs/s)'],
      tput.map((r) => [
        r.row + (r.missing ? ' (!missing)' : '') + (r.failed.length ? ` (${r.failed.length} failed)` : ''),
        fmt(r.msgsPerSec),
        fx(r.mbPerSec, 1),
        isRaw(r) ? '1.00' : fx(r.ratioToRaw, 2),
        `${fx(r.senderCpu, 0)}/${fx(r.receiverCpu, 0)}`,
        r.rounds.map((x) => fmt(x.msgsPerSec)).join(' / '),
      ]),
      ['l', 'r', 'r', 'r', 'r', 'l'],
    ],
    [
      '### Round-trip latency, 1 KiB, one at a time',
      ['row (1 KiB)', 'p50 µs', 'p99 µs', 'p50 x raw', 'p99 x raw', 'runs p50/p99'],
      lat.map((r) => [
        r.row + (r.failed.length ? ` (${r.failed.length} failed)` : ''),
        fx(r.p50Us, 0),
        fx(r.p99Us, 0),
        isRaw(r) ? '1.00' : fx(r.p50Ratio, 2),
        isRaw(r) ? '1.00' : fx(r.p99Ratio, 2),
        r.rounds.map((x) => `${fx(x.p50, 0)}/${fx(x.p99, 0)}`).join(' '),
      ]),
      ['l', 'r', 'r', 'r', 'r', 'l'],
    ],
    [
      '### Targets',
      ['target', 'measured', 'limit', 'result'],
      targets.map((g) => [
        g.name,
        `${fx(g.value, g.unit === 'µs' ? 0 : 2)} ${g.unit}`,
        `${g.limit} ${g.unit}`,
        g.pass === null ? 'n/a' : g.pass ? 'PASS' : 'MISS',
      ]),
      ['l', 'r', 'r', 'l'],
    ],
  ];
}

// ---- main ---------------------------------------------------------------------------------------

async function main() {
  const startedAt = new Date().toISOString();
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
  const plan = `${REPS} repetition(s), medians; throughput ${WARMUP_MS} ms warm-up + ${MEASURE_MS} ms measured on the receiver; latency ${LAT_WARMUP_MS} + ${LAT_MEASURE_MS} ms; async window ${WINDOW} B; ack window ${ACK_WINDOW}.`;
  console.log(
    `clowder channel benchmark: ${info.cpuModel} x${info.cores}, node ${info.node}, load ${info.loadavgAtStart.join(' ')}\n${plan}`,
  );
  await startPeer();
  const rounds = new Map(); // id -> results, one per repetition
  const channels = new Map();
  try {
    for (const v of CHANNELS) if (ROWS.some((r) => r.variant === v)) channels.set(v.name, await startChannels(v));
    for (let rep = 1; rep <= REPS; rep++) {
      process.stderr.write(`repetition ${rep}/${REPS}\n`);
      for (const row of ROWS) {
        const r = await runRow(row, channels);
        rounds.set(row.id, [...(rounds.get(row.id) ?? []), r]);
        logRound(row, r);
      }
    }
  } finally {
    for (const ctx of channels.values()) await stopChannels(ctx).catch(() => {});
  }
  const summary = summarize(rounds);
  const t = tables(summary);
  console.log(
    `\n${t.map(([, ...x]) => textTable(...x)).join('\n\n')}\n\n(${((performance.now() - T0) / 1000).toFixed(0)} s; MB = 10^6 bytes of payload; "x raw" compares msgs/s with the raw row of the same size, latency with raw ping-pong; cpu = % of one core used by sender/receiver during the measured window)`,
  );
  if (!args['no-save']) {
    const json = resultsJson({ benchmark: 'channel', startedAt, t0: T0, machine: info, settings, ...summary });
    const md = [
      reportHead('clowder channel benchmark', startedAt, info),
      plan,
      '',
      ...t.map(([title, ...x]) => `${title}\n\n${mdTable(...x)}\n`),
    ];
    saveResults(json, md.join('\n'));
  }
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  console.error(err);
  exitCode = 1;
} finally {
  await stopPeer();
}
process.exit(exitCode);
