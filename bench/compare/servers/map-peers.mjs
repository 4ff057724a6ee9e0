// Replication for the Map session server (map.mjs with BENCH_SERVER keys replPort and peers): the
// shared workload's "replication ceiling" (/work/shared/workload/README.md) — every change pushed as
// a length-prefixed JSON frame to each peer, the turn's frames coalesced into one write per peer,
// peers parse and apply. No membership, no security, no ordering or ownership: the least any
// replication over TCP can cost on node:http, so the floor for clowder's rows and its lag probe.
import { connect, createServer } from 'node:net';
import { cfg } from './common.mjs';

const HEADER = 4;
/** Frames of this turn, sent before the turn's held responses (see flush()). */
let pending = [];
let pendingBytes = 0;
/** Open connections to the peers. */
const out = [];
/** visibleLog: [id, count, CLOCK_MONOTONIC ns] of each applied change (run.mjs's lag probe). */
const visible = [];

/**
 * Starts the replication listener (applying each peer's frame with `apply`) and connects to every
 * peer, retrying until each listens. Resolves once listening; `connectedPeers()` tells the rest.
 */
export function startPeers(apply) {
  const server = createServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      let off = 0;
      while (buf.length - off >= HEADER) {
        const len = buf.readUInt32BE(off);
        if (buf.length - off - HEADER < len) break;
        const m = JSON.parse(buf.toString('utf8', off + HEADER, off + HEADER + len));
        off += HEADER + len;
        apply(m);
        if (cfg.visibleLog) visible.push([m[0], m[1], Number(process.hrtime.bigint())]);
      }
      buf = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
    });
    socket.on('error', () => {});
  });
  for (const peer of cfg.peers ?? []) dial(peer);
  process.on('message', (m) => {
    if (m?.id !== undefined && m.cmd === 'visible') process.send({ id: m.id, ok: true, log: visible.splice(0) });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.replPort, '127.0.0.1', resolve);
  });
}

function dial(peer) {
  const [host, port] = peer.split(':');
  const s = connect(Number(port), host);
  s.setNoDelay(true);
  s.once('connect', () => out.push(s));
  s.once('error', () => {
    if (!out.includes(s)) setTimeout(() => dial(peer), 50);
  });
}

export const connectedPeers = () => out.length;
export const replicating = () => (cfg.peers ?? []).length > 0;

/** Queues one change for this turn's write to every peer. */
export function push(m) {
  const json = Buffer.from(JSON.stringify(m));
  const head = Buffer.allocUnsafe(HEADER);
  head.writeUInt32BE(json.length);
  pending.push(head, json);
  pendingBytes += HEADER + json.length;
}

/** Writes the turn's frames to every peer, one write each. */
export function flush() {
  if (pending.length === 0) return;
  const all = Buffer.concat(pending, pendingBytes);
  pending = [];
  pendingBytes = 0;
  for (const s of out) s.write(all);
}
