/**
 * The multi-host test bed: one clowder node (the real `clowder start` CLI) per network namespace
 * of a BedNetwork (test/helpers/netbed-net.ts), each on its own address 10.77.0.K, with a cluster
 * key (encrypted) unless the bed is explicitly insecure. Faults: split/cut/heal and loss on the
 * bridge, delay of a host's outgoing packets (an NFQUEUE, as the kernel may have no netem), pause
 * (SIGSTOP/SIGCONT), kill (SIGKILL), restart.
 *
 * HTTP from the test process: every namespace runs a small forwarder (scripts/netbed-forward.mjs)
 * from a Unix socket in the bed's temp directory to the node's HTTP port, so the host needs no
 * route into the bed. The status endpoints (`/_clowder/*`) answer with the bed's admin token.
 *
 * Teardown (`destroy()`) kills every process by PID and deletes the namespaces; it also runs on
 * process exit and on SIGINT/SIGTERM, and the next bed deletes what a crashed run left behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DEFAULT_DRAIN_MS } from '../../src/config/node-config.js';
import { BedNetwork, SUBNET } from './netbed-net.js';
import { CliProcess, COUNTER_APP, cleanEnv, REPO, type Response, sessionCookie } from './node-process.js';
import { waitFor } from './wait.js';

export { bedUnavailable } from './netbed-net.js';

const FORWARDER = join(REPO, 'scripts', 'netbed-forward.mjs');
const DELAYER = join(REPO, 'scripts', 'netbed-delay.py');
/** The iptables rule that hands a host's outgoing packets to its delayer (NFQUEUE 0 of its namespace). */
const DELAY_RULE = ['OUTPUT', '-o', 'eth0', '-j', 'NFQUEUE', '--queue-num', '0', '--queue-bypass'];
const HTTP_PORT = 8080;
const CLUSTER_PORT = 4000;

/** Stores `?v=<value>` as the session attribute `marker` (the capture test looks for it on the wire). */
const MARKER_APP = `export const distributable = true;
export default function marker(req, res) {
  const m = /[?&]v=([A-Za-z0-9]+)/.exec(req.url ?? '');
  if (m) req.session.marker = m[1];
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('marker=' + (req.getSession(false)?.marker ?? '') + ' node=' + req.jvmRoute + '\\n');
}
`;

export interface BedOptions {
  /** Hosts (and nodes), default 3. */
  nodes?: number;
  /** Membership kind; multicast goes over the bridge (interface 10.77.0.K, TTL 1). Default multicast. */
  membership?: 'multicast' | 'static' | 'dns';
  /** DNS membership (with `membership: 'dns'`): the name, the server ("ip[:port]", e.g. BedDns of netbed-dns.ts on a bed address), the refresh. */
  dns?: { name: string; server: string; refreshMs?: number };
  /** Nodes started by create() on h1..hN (default: every host); the others: startHost(k) later. */
  started?: number;
  /** Heartbeat / ping interval (default 250 ms). */
  frequencyMs?: number;
  /** membership.dropTimeMs (default 2000 ms). */
  dropTimeMs?: number;
  /** Replication mode (default async). */
  send?: 'async' | 'sync';
  /** http.drainMs of the nodes (the drain of a graceful stop); default: the node's default. */
  drainMs?: number;
  /** Run without a cluster key (unauthenticated, unencrypted): only the capture test's control. */
  insecure?: boolean;
  /** Start the nodes (default true); false: only the network. */
  start?: boolean;
  /**
   * Start each node once the previous one is ready, as a deployment does (default), or all at
   * once. The order matters: a node merges late members by their start time.
   */
  startOrder?: 'sequential' | 'parallel';
  /** The module mounted at /app (default the counter example; e.g. netbed-probe.ts's, which wraps it). */
  app?: string;
  /** The channel's `detector` config block (SWIM/Lifeguard failure detector); default: the channel's defaults. */
  detector?: Record<string, unknown>;
}

export interface BedHost {
  readonly k: number;
  readonly name: string;
  readonly ns: string;
  readonly address: string;
  /** The running node (replaced by restart). */
  node: CliProcess;
}

/** Live beds of this process, torn down by the exit and signal handlers. */
const live = new Set<NetBed>();
let handlersInstalled = false;
function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const bed of live) bed.destroySync();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const bed of live) bed.destroySync();
      process.kill(process.pid, signal);
    });
  }
}

export class NetBed {
  readonly net: BedNetwork;
  readonly hosts: BedHost[] = [];
  readonly dir: string;
  readonly options: Required<BedOptions>;
  /** The shared cluster key (absent when insecure). */
  readonly clusterKey = randomBytes(32).toString('base64');
  readonly adminToken = randomBytes(24).toString('hex');
  /** Every process this bed started (nodes, also replaced ones, forwarders), for teardown by PID. */
  readonly #procs: { pid: number; running: () => boolean }[] = [];
  readonly #nodes: CliProcess[] = [];
  readonly #forwarders: ChildProcess[] = [];

  private constructor(options: BedOptions) {
    this.options = {
      nodes: 3,
      membership: 'multicast',
      frequencyMs: 250,
      dropTimeMs: 2000,
      send: 'async',
      insecure: false,
      start: true,
      startOrder: 'sequential',
      app: COUNTER_APP,
      drainMs: DEFAULT_DRAIN_MS,
      dns: { name: 'nodes.bed.test', server: `${SUBNET}.1`, refreshMs: 300 },
      started: options.nodes ?? 3,
      detector: {},
      ...options,
    };
    this.net = new BedNetwork(this.options.nodes);
    // The owner's PID in the name: sweepStale() removes the directory of a crashed run.
    this.dir = mkdtempSync(join(tmpdir(), `clowderbed-${process.pid}-`));
  }

  /** Creates the network, starts a forwarder and a node per host, and waits until every node is ready. */
  static async create(options: BedOptions = {}): Promise<NetBed> {
    const bed = new NetBed(options);
    installHandlers();
    live.add(bed);
    try {
      await bed.net.up();
      writeFileSync(join(bed.dir, 'marker-app.mjs'), MARKER_APP);
      await Promise.all(bed.net.hosts.map((_, i) => bed.#forward(i + 1)));
      if (bed.options.start) {
        for (const h of bed.net.hosts.slice(0, bed.options.started)) {
          const k = Number(h.name.slice(1));
          bed.hosts.push({ k, name: h.name, ns: h.ns, address: h.address, node: bed.#startNode(k) });
          if (bed.options.startOrder === 'sequential') await bed.host(k).node.ready(30_000);
        }
        await Promise.all(bed.hosts.map((h) => h.node.ready(30_000)));
      }
      return bed;
    } catch (err) {
      await bed.destroy();
      throw err;
    }
  }

  host(k: number): BedHost {
    const h = this.hosts[k - 1];
    if (!h) throw new Error(`no node h${k} in this bed`);
    return h;
  }

  #socket(k: number): string {
    return join(this.dir, `h${k}.sock`);
  }

  async #forward(k: number): Promise<void> {
    const h = this.net.host(k);
    const child = spawn(
      'ip',
      ['netns', 'exec', h.ns, process.execPath, FORWARDER, this.#socket(k), h.address, String(HTTP_PORT)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    this.#forwarders.push(child);
    this.#procs.push({ pid: child.pid!, running: () => child.exitCode === null && child.signalCode === null });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`forwarder of h${k} not ready within 15 s`)), 15_000);
      createInterface({ input: child.stdout! }).once('line', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`forwarder of h${k} exited (${code})`));
      });
    });
  }

  /** The node config of host `k` (JSON file, so that dropTime and membership are set exactly). */
  config(k: number): Record<string, unknown> {
    const o = this.options;
    const h = this.net.host(k);
    const membership =
      o.membership === 'dns'
        ? {
            type: 'dns',
            name: o.dns.name,
            servers: [o.dns.server],
            refreshMs: o.dns.refreshMs ?? 300,
            pingIntervalMs: o.frequencyMs,
            dropTimeMs: o.dropTimeMs,
          }
        : o.membership === 'multicast'
          ? { type: 'multicast', interface: h.address, frequencyMs: o.frequencyMs, dropTimeMs: o.dropTimeMs }
          : {
              type: 'static',
              members: this.net.hosts.map((x) => `${x.address}:${CLUSTER_PORT}`),
              pingIntervalMs: o.frequencyMs,
              dropTimeMs: o.dropTimeMs,
            };
    return {
      name: h.name,
      http: { host: h.address, port: HTTP_PORT, drainMs: o.drainMs },
      apps: [
        { path: '/app', module: o.app },
        { path: '/mark', module: join(this.dir, 'marker-app.mjs') },
      ],
      cluster: {
        receiver: { address: h.address, port: CLUSTER_PORT, autoBind: 1 },
        membership,
        detector: o.detector,
        ...(o.insecure ? { insecure: true } : { encrypt: true }),
      },
      sessions: { sendOptions: o.send },
    };
  }

  #startNode(k: number): CliProcess {
    const h = this.net.host(k);
    const file = join(this.dir, `h${k}.json`);
    writeFileSync(file, JSON.stringify(this.config(k)));
    const env = cleanEnv({
      HOME: this.dir,
      CLOWDER_ADMIN_TOKEN: this.adminToken,
      ...(this.options.insecure ? {} : { CLOWDER_CLUSTER_KEY: this.#keys.get(k) ?? this.clusterKey }),
    });
    const wrap = ['ip', 'netns', 'exec', h.ns];
    const node = new CliProcess(h.name, ['start', '--config', file, '--json'], env, wrap, this.#builds.get(k));
    this.#nodes.push(node);
    this.#procs.push({ pid: node.pid, running: () => node.running });
    return node;
  }

  /** HTTP GET `path` on node `k` (through its forwarder), with an optional session cookie. */
  get(k: number, path: string, cookie?: string, timeoutMs = 5_000): Promise<Response> {
    const h = this.net.host(k);
    const headers: Record<string, string> = { host: `${h.address}:${HTTP_PORT}` };
    if (cookie) headers.cookie = `JSESSIONID=${cookie}`;
    if (path.startsWith('/_clowder/')) headers.authorization = `Bearer ${this.adminToken}`;
    return new Promise((resolve, reject) => {
      const req = request(
        { socketPath: this.#socket(k), path, method: 'GET', headers, agent: false, timeout: timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString('utf8'),
              headers: res.headers,
              session: sessionCookie(res.headers['set-cookie']),
            }),
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error(`GET h${k} ${path}: no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  }

  /** `/_clowder/stats` of node `k`, parsed. */
  async stats(k: number): Promise<Record<string, unknown>> {
    const res = await this.get(k, '/_clowder/stats');
    if (res.status !== 200) throw new Error(`h${k} stats: ${res.status} ${res.body}`);
    return JSON.parse(res.body) as Record<string, unknown>;
  }

  /** The member names node `k` sees, from its `member added` / `member removed` log lines. */
  members(k: number): string[] {
    const ids = new Map<string, string>();
    for (const l of this.host(k).node.logs) {
      if (l.msg === 'member added') ids.set(String(l.id), String(l.member));
      else if (l.msg === 'member removed') ids.delete(String(l.id));
    }
    return [...new Set(ids.values())].sort();
  }

  /** Log lines `msg` of node `k` read after `since` (ms epoch). */
  logsSince(k: number, msg: string, since: number): { member?: unknown; receivedAt: number }[] {
    return this.host(k).node.logs.filter((l) => l.msg === msg && l.receivedAt >= since);
  }

  /** True when every listed node sees exactly the other listed nodes (by name). */
  viewIs(expected: Record<number, number[]>): boolean {
    return Object.entries(expected).every(
      ([k, others]) => this.members(Number(k)).join(',') === others.map((o) => `h${o}`).join(','),
    );
  }

  /** Waits until `viewIs(expected)`; the error shows every node's view. */
  async waitView(expected: Record<number, number[]>, what: string, timeoutMs: number): Promise<number> {
    const t0 = Date.now();
    try {
      await waitFor(() => this.viewIs(expected), what, { timeoutMs, intervalMs: 20 });
    } catch (err) {
      throw new Error(`${(err as Error).message}; views: ${this.describeViews()}`);
    }
    return Date.now() - t0;
  }

  /** The full mesh: every node sees every other. */
  fullMesh(): Record<number, number[]> {
    const all = this.hosts.map((h) => h.k);
    return Object.fromEntries(all.map((k) => [k, all.filter((o) => o !== k)]));
  }

  describeViews(): string {
    return this.hosts.map((h) => `h${h.k}${h.node.running ? '' : '(down)'}→[${this.members(h.k).join(',')}]`).join(' ');
  }

  split(a: readonly number[], b: readonly number[]): Promise<void> {
    return this.net.split(a, b);
  }
  cut(k: number): Promise<void> {
    return this.net.cut(k);
  }
  heal(): Promise<void> {
    return this.net.heal();
  }
  loss(k: number, percent: number): Promise<void> {
    return this.net.loss(k, percent);
  }

  readonly #delayers = new Map<number, { child: ChildProcess; ms: number }>();

  /**
   * Delays every packet host `k` sends by `ms` (0: no delay), in order. This kernel has no netem
   * (nor fq/etf), so the delay is an NFQUEUE whose verdicts scripts/netbed-delay.py holds for `ms`:
   * needs iptables (its NFQUEUE target) and python3.
   */
  async delay(k: number, ms: number): Promise<void> {
    const old = this.#delayers.get(k);
    if (old) {
      this.#delayers.delete(k);
      await this.net.exec(k, 'iptables', ['-D', ...DELAY_RULE]);
      // Packets already queued get their verdict before the delayer goes.
      const t = Date.now();
      await waitFor(() => Date.now() - t >= 2 * old.ms + 50, 'queued packets to leave', { timeoutMs: 60_000 });
      old.child.kill('SIGKILL');
    }
    if (ms === 0) return;
    const child = this.spawnIn(k, 'python3', [DELAYER, '0', String(ms)]);
    const err: string[] = [];
    createInterface({ input: child.stderr! }).on('line', (l) => err.push(l));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`delayer of h${k} not ready within 10 s`)), 10_000);
      createInterface({ input: child.stdout! }).once('line', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`delayer of h${k} exited (${code}): ${err.join('\n')}`));
      });
    });
    this.#delayers.set(k, { child, ms });
    await this.net.exec(k, 'iptables', ['-A', ...DELAY_RULE]);
  }

  /** Packets host `k`'s delay rule has queued so far (proof that the delay applies). */
  async delayedPackets(k: number): Promise<number> {
    const text = await this.net.exec(k, 'iptables', ['-L', 'OUTPUT', '-v', '-n', '-x']);
    const line = text.split('\n').find((l) => l.includes('NFQUEUE'));
    return Number(line?.trim().split(/\s+/)[0] ?? 0);
  }

  /** SIGSTOP node `k` (a long GC pause: its sockets stay open, it answers nothing). */
  pause(k: number): void {
    this.host(k).node.kill('SIGSTOP');
  }
  resume(k: number): void {
    this.host(k).node.kill('SIGCONT');
  }
  /** SIGKILL node `k` and wait for its exit. */
  async kill(k: number): Promise<void> {
    await this.host(k).node.destroy();
  }
  /** Cluster keys per host (CLOWDER_CLUSTER_KEY, e.g. "K1,K2" during a rotation), used from its next start. */
  readonly #keys = new Map<number, string>();
  setClusterKey(k: number, keys: string): void {
    this.#keys.set(k, keys);
  }

  /** The CLI entry host `k` runs (another build's dist/cli/main.js: a rolling upgrade), used from its next start. */
  readonly #builds = new Map<number, string>();
  setBuild(k: number, cli: string): void {
    this.#builds.set(k, cli);
  }

  /** Starts a node on host `k` that create() left unstarted (`started`), hosts in order; waits until ready. */
  async startHost(k: number): Promise<CliProcess> {
    if (k !== this.hosts.length + 1) throw new Error(`start h${this.hosts.length + 1} next, not h${k}`);
    const h = this.net.host(k);
    this.hosts.push({ k, name: h.name, ns: h.ns, address: h.address, node: this.#startNode(k) });
    await this.host(k).node.ready(30_000);
    return this.host(k).node;
  }

  /** Graceful stop of node `k` (SIGTERM, as an orchestrator does; SIGKILL after 10 s). */
  async stop(k: number): Promise<void> {
    await this.host(k).node.stop(10_000);
  }

  /** Starts node `k` again (after kill or stop) and waits until it is ready. */
  async restart(k: number): Promise<CliProcess> {
    const h = this.host(k);
    if (h.node.running) await h.node.destroy();
    h.node = this.#startNode(k);
    await h.node.ready(30_000);
    return h.node;
  }

  /** Runs `cmd` in host `k`'s namespace; a long-running child for tools like tcpdump. */
  spawnIn(k: number, cmd: string, args: readonly string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.net.host(k).ns, cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#procs.push({ pid: child.pid!, running: () => child.exitCode === null && child.signalCode === null });
    return child;
  }

  /** Stops the nodes (SIGKILL), the forwarders and anything spawned in the bed, deletes the namespaces. */
  async destroy(): Promise<void> {
    this.#killAll();
    await Promise.all(this.#nodes.map((n) => n.destroy()));
    this.destroySync();
  }

  #killAll(): void {
    for (const p of this.#procs) {
      if (!p.running()) continue;
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /** Synchronous teardown (exit and signal handlers). */
  destroySync(): void {
    this.#killAll();
    this.net.downSync();
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }
}

/** `count=3 node=h1 …` → 3 (NaN when absent). */
export function countOf(body: string): number {
  return Number(/count=(\d+)/.exec(body)?.[1] ?? Number.NaN);
}
