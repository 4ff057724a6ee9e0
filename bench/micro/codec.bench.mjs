// Micro benchmark of the application-payload codec, side by side with JSON and v8.serialize for reference.
//
//   npx tsc -p tsconfig.json && node bench/micro/codec.bench.mjs
//
// Each case is warmed up, then measured in 5 rounds of BENCH_ROUND_MS (default 200 ms, so ~1 s per case);
// the table shows the median ops/s. JSON and v8 are references only: JSON does not round-trip Date or
// Uint8Array exactly, and v8.deserialize is unsafe for untrusted input.
import v8 from 'node:v8';
import { decode, encode } from '../../dist/codec/value-codec.js';

const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 200);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 300);
const ROUNDS = 5;

const workloads = [
  {
    name: 'session {count, 1 KiB payload}',
    value: { count: 12345, payload: 'count=12345;'.repeat(86).slice(0, 1024) },
  },
  { name: 'small {user, roles, last: Date}', value: { user: 'alice', roles: ['a', 'b'], last: new Date() } },
  { name: '64 KiB Uint8Array', value: new Uint8Array(64 * 1024).map((_, i) => (i * 31) & 0xff) },
];

const codecs = [
  { name: 'clowder', enc: (v) => encode(v), dec: (b) => decode(b) },
  { name: 'JSON', enc: (v) => JSON.stringify(v), dec: (s) => JSON.parse(s) },
  { name: 'v8', enc: (v) => v8.serialize(v), dec: (b) => v8.deserialize(b) },
];

let sink = 0;

function runFor(fn, arg, ms) {
  const deadline = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
  let batch = 1;
  let ops = 0;
  const start = process.hrtime.bigint();
  for (;;) {
    for (let i = 0; i < batch; i++) {
      const out = fn(arg);
      sink += out === undefined ? 0 : 1;
    }
    ops += batch;
    const now = process.hrtime.bigint();
    if (now >= deadline) return (ops * 1e9) / Number(now - start);
    if (batch < 1 << 16) batch *= 2;
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function measure(fn, arg) {
  runFor(fn, arg, WARMUP_MS);
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) rounds.push(runFor(fn, arg, ROUND_MS));
  return median(rounds);
}

function fmt(n) {
  return Math.round(n).toLocaleString('en-US');
}

function size(encoded) {
  return typeof encoded === 'string' ? Buffer.byteLength(encoded) : encoded.length;
}

const rows = [];
for (const w of workloads) {
  for (const c of codecs) {
    const encoded = c.enc(w.value);
    const encodeOps = measure(c.enc, w.value);
    const decodeOps = measure(c.dec, encoded);
    rows.push([w.name, c.name, fmt(encodeOps), fmt(decodeOps), String(size(encoded))]);
  }
}

const header = ['workload', 'codec', 'encode ops/s', 'decode ops/s', 'bytes'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells) => `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
console.log(`node ${process.version}, ${ROUNDS} rounds x ${ROUND_MS} ms per case, median`);
console.log(line(header));
console.log(`|${widths.map((w, i) => (i < 2 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
for (const r of rows) console.log(line(r));
if (sink === 0) console.log('(sink)');
