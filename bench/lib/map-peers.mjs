// Replication for the benchmarks' hand-written Map session servers (bench/compare/servers/map.mjs,
// bench/http/map-node.mjs): the shared workload's "replication ceiling"
// (../shared/workload/README.md) — every change pushed as a length-prefixed JSON frame to each
// peer, the turn's frames coalesced into one write per peer, peers parse and apply. No membership,
// no security, no ordering or ownership: the least any replication over TCP costs on node:http, so
// the floor that clowder's rows and lag probes are read against.
import { connect, createServer } from 'node:net';
import { waitUntil } from './wait.mjs';

const HEADER = 4;

export class MapPeers {
  /** Frames of this turn (see flush()). */
  #pending = [];
  #pendingBytes = 0;
  /** Open connections to the peers. */
  #out = [];
  /** Changes pushed (each to every peer) and peers' changes applied: the harness's settle check. */
  sent = 0;
  received = 0;

  /**
   * @param {{ port: number, peers: string[], apply: (change: unknown[]) => void }} options
   *   port: where peers' frames arrive; peers: "host:port" of the others; apply: runs per frame.
   */
  constructor({ port, peers, apply }) {
    this.port = port;
    this.peers = peers;
    this.apply = apply;
  }

  /** Listens, then dials every peer (retrying until each listens); see connected. */
  async start() {
    const server = createServer((socket) => this.#receive(socket));
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', resolve);
    });
    for (const peer of this.peers) this.#dial(peer);
  }

  /** Peers connected to so far. */
  get connected() {
    return this.#out.length;
  }

  /** Resolves once every peer is connected (rejects after `timeoutMs`). */
  allConnected(timeoutMs = 10_000) {
    return waitUntil(() => this.#out.length >= this.peers.length, {
      timeoutMs,
      what: () => `connected to ${this.#out.length} of ${this.peers.length} peers`,
    });
  }

  /** Queues one change for this turn's write to every peer. */
  push(change) {
    const json = Buffer.from(JSON.stringify(change));
    const head = Buffer.allocUnsafe(HEADER);
    head.writeUInt32BE(json.length);
    this.#pending.push(head, json);
    this.sent++;
    this.#pendingBytes += HEADER + json.length;
  }

  /** Writes the turn's frames to every peer, one write each. */
  flush() {
    if (this.#pending.length === 0) return;
    const all = Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    for (const s of this.#out) s.write(all);
  }

  #receive(socket) {
    let buf = Buffer.alloc(0);
    socket.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      let off = 0;
      while (buf.length - off >= HEADER) {
        const len = buf.readUInt32BE(off);
        if (buf.length - off - HEADER < len) break;
        this.apply(JSON.parse(buf.toString('utf8', off + HEADER, off + HEADER + len)));
        this.received++;
        off += HEADER + len;
      }
      buf = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
    });
    socket.on('error', () => {});
  }

  #dial(peer) {
    const [host, port] = peer.split(':');
    const s = connect(Number(port), host);
    s.setNoDelay(true);
    s.once('connect', () => this.#out.push(s));
    s.once('error', () => {
      if (!this.#out.includes(s)) setTimeout(() => this.#dial(peer), 50);
    });
  }
}
