// Micro benchmark of what a peer does for each change another node replicates to it (the
// receiving side of the shared workload's `/app/counter`): decode the DELTA message the channel
// delivered (`count` and a 1 KiB `payload`, as the writing node encodes them) and apply it to the
// replica (version checks, per-attribute stamps, storing the values). No sockets: the transport's
// share is measured by bench/channel; this is the session layer's JS per replicated request.
//
//   npm run build && node bench/micro/replica-apply.bench.mjs
//
// 1000 sessions, deltas round-robin over them, each newer than the last. Every round's messages
// are encoded before the round (not measured); 7 rounds of ROUND_MESSAGES, median ns per delta.
import { randomBytes } from 'node:crypto';
import { decode, encode } from '../../dist/index.js';
import { newSessionId } from '../../dist/session/ids.js';
import { Msg } from '../../dist/session/messages.js';
import { median } from '../lib/stats.mjs';
import { payloadOf, standaloneSessions } from '../lib/workload.mjs';

const SESSIONS = 1000;
/** As the replication hub decodes a session message: byte arrays as views (the manager decodes or copies each). */
const VIEWS = { byteViews: true };
const ROUND_MESSAGES = Number(process.env.BENCH_ROUND_MESSAGES ?? 50_000);
const ROUNDS = 7;

const cluster = await standaloneSessions('n2');
const manager = cluster.manager;
const from = { id: randomBytes(16).toString('hex'), name: 'n1' };
const ids = Array.from({ length: SESSIONS }, newSessionId);
const versions = new Array(SESSIONS).fill(1);
const counts = new Array(SESSIONS).fill(0);
for (const id of ids) {
  const m = [Msg.CREATED, '/app', id, Date.now(), 1800, 1, ['count', 'payload'], [encode(0), encode('')]];
  manager.receive(decode(encode(m), undefined, VIEWS), from);
}

/** One round's messages as the channel hands them over: encoded bytes, decoded on delivery. */
function encodeRound(n) {
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const k = i % SESSIONS;
    const base = versions[k];
    const version = base + 1;
    versions[k] = version;
    const count = ++counts[k];
    out[i] = encode([
      Msg.DELTA,
      '/app',
      ids[k],
      base,
      version,
      ['count', 'payload'],
      [encode(count), encode(payloadOf(count, 1024))],
      [],
      null,
    ]);
  }
  return out;
}

function applyRound(msgs) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < msgs.length; i++) manager.receive(decode(msgs[i], undefined, VIEWS), from);
  return Number(process.hrtime.bigint() - t0) / msgs.length;
}

applyRound(encodeRound(ROUND_MESSAGES)); // warm-up
const ns = [];
for (let r = 0; r < ROUNDS; r++) ns.push(applyRound(encodeRound(ROUND_MESSAGES)));
const stats = manager.stats();
console.log(`replica apply (decode + apply a DELTA of count + 1 KiB payload): ${median(ns).toFixed(0)} ns/delta`);
console.log(`rounds: ${ns.map((x) => x.toFixed(0)).join(' / ')}; stale deltas ${stats.staleDeltas}`);
if (stats.malformed > 0)
  throw new Error(`the replica dropped ${stats.malformed} messages as malformed: fix this bench`);
await cluster.stop();
