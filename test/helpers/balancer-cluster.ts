/**
 * End-to-end failover through a load balancer: three `clowder start` nodes (node-a, node-b,
 * node-c) on fixed loopback ports (a restarted node comes back where the balancer expects it), a
 * balancer in front (the real HAProxy or nginx from the repository's example configs with the
 * ports rewritten, or `clowder balancer`), and the scenario every balancer must pass, for every
 * session manager: sessions stick, a SIGKILLed node's sessions continue on the others with their
 * latest values and a cookie for the new node, and the node comes back and takes its share.
 * Balancer processes run from a temp dir with their own pid file and logs, and are stopped by PID.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, type TestContext, test } from 'node:test';
/** The session managers every scenario runs for (test/helpers/managers.ts). */
import { MANAGERS } from './managers.js';
import { type CliProcess, COUNTER_APP, fields, get, REPO, startNode } from './node-process.js';
import { freePorts, waitFor } from './wait.js';

export { MANAGERS };

export const NAMES = ['node-a', 'node-b', 'node-c'] as const;

/** Where a binary is on PATH (or in /usr/sbin, where Debian puts haproxy and nginx); undefined when missing. */
export function which(binary: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin']) {
    const p = join(dir, binary);
    try {
      execFileSync(p, ['-v'], { stdio: 'ignore' });
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Three nodes and their ports. */
export class Cluster {
  readonly nodes = new Map<string, CliProcess>();
  readonly all: CliProcess[] = [];
  constructor(
    readonly httpPorts: readonly number[],
    readonly clusterPorts: readonly number[],
    readonly managerArgs: readonly string[],
  ) {}

  static async start(managerArgs: readonly string[]): Promise<Cluster> {
    const ports = await freePorts(6);
    const c = new Cluster(ports.slice(0, 3), ports.slice(3), managerArgs);
    // One after the other: each takes the sessions of those already running.
    for (const name of NAMES) await c.startNode(name);
    return c;
  }

  async startNode(name: string): Promise<CliProcess> {
    const i = NAMES.indexOf(name as (typeof NAMES)[number]);
    const members = this.clusterPorts.map((p) => `127.0.0.1:${p}`).join(',');
    const p = startNode(name, [
      '--json',
      '--name',
      name,
      '--port',
      String(this.httpPorts[i]),
      '--cluster-port',
      String(this.clusterPorts[i]),
      '--membership',
      'static',
      '--members',
      members,
      '--app',
      `/app=${COUNTER_APP}`,
      ...this.managerArgs,
    ]);
    this.all.push(p);
    this.nodes.set(name, p);
    await p.ready(20_000);
    return p;
  }

  node(name: string): CliProcess {
    return this.nodes.get(name)!;
  }

  async destroy(): Promise<void> {
    await Promise.all(this.all.map((p) => p.destroy()));
  }
}

/** A balancer process started from a temp dir; stopped by its PID. */
export class BalancerProcess {
  readonly child: ChildProcess;
  output = '';
  #exited: Promise<void>;
  constructor(
    readonly label: string,
    command: string,
    args: readonly string[],
    readonly dir: string,
  ) {
    this.child = spawn(command, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    this.#exited = new Promise((resolve) => this.child.once('close', () => resolve()));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM by PID (SIGKILL after 5 s), then removes the temp dir. */
  async stop(): Promise<void> {
    if (this.running && this.child.pid !== undefined) {
      process.kill(this.child.pid, 'SIGTERM');
      const timer = setTimeout(() => {
        if (this.running && this.child.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
      }, 5000);
      await this.#exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An example config with the ports rewritten: 8080 → `listen`, 8081-8083 → the nodes'. */
export function rewritePorts(text: string, listen: number, nodes: readonly number[]): string {
  const map: Record<string, number> = { '8080': listen, '8081': nodes[0]!, '8082': nodes[1]!, '8083': nodes[2]! };
  return text.replace(/127\.0\.0\.1:(808[0-3])\b/g, (_m, port: string) => `127.0.0.1:${map[port]}`);
}

/** Resolves once something accepts connections on 127.0.0.1:`port`. */
export async function listening(port: number, what: string, proc?: BalancerProcess): Promise<void> {
  await waitFor(
    () => {
      if (proc && !proc.running) throw new Error(`${what} exited:\n${proc.output}`);
      return new Promise<boolean>((resolve) => {
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
    },
    `${what} listening on ${port}`,
    { timeoutMs: 10_000, intervalMs: 20 },
  );
}

/** HAProxy from examples/haproxy/haproxy.cfg, in the foreground (-db). */
export async function startHaproxy(binary: string, listen: number, nodes: readonly number[]): Promise<BalancerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'clowder-haproxy-'));
  const cfg = rewritePorts(readFileSync(join(REPO, 'examples/haproxy/haproxy.cfg'), 'utf8'), listen, nodes);
  writeFileSync(join(dir, 'haproxy.cfg'), cfg);
  const p = new BalancerProcess('haproxy', binary, ['-db', '-f', join(dir, 'haproxy.cfg')], dir);
  await listening(listen, 'haproxy', p);
  return p;
}

/** nginx from examples/nginx/nginx.conf, in the foreground, prefix (pid, logs, temp) in a temp dir. */
export async function startNginx(binary: string, listen: number, nodes: readonly number[]): Promise<BalancerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'clowder-nginx-'));
  // As root, nginx's workers run as nobody: they must be able to reach the temp paths.
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'tmp'));
  const cfg = rewritePorts(readFileSync(join(REPO, 'examples/nginx/nginx.conf'), 'utf8'), listen, nodes);
  writeFileSync(join(dir, 'nginx.conf'), cfg);
  // -e: the error log before the config is read (else /var/log/nginx, absent or not ours).
  const p = new BalancerProcess(
    'nginx',
    binary,
    ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log'), '-g', 'daemon off;'],
    dir,
  );
  await listening(listen, 'nginx', p);
  return p;
}

/** A client of the cluster through the balancer: its cookie and the count it last saw. */
interface Client {
  cookie: string;
  route: string;
  count: number;
}

const routeOf = (cookie: string) => cookie.slice(cookie.lastIndexOf('.') + 1);

/**
 * The failover scenario through the balancer at `url`: sticky sessions; SIGKILL of a node; its
 * sessions continue elsewhere, each with its latest count and a cookie naming the new node, and
 * no request fails; the node restarts, holds the sessions (state transfer) and takes new clients.
 * `maxBackMs`: how long the balancer may take to send new clients to the restarted node.
 */
export async function failoverScenario(
  t: TestContext,
  url: string,
  cluster: Cluster,
  { maxBackMs = 15_000 }: { maxBackMs?: number } = {},
): Promise<void> {
  let requests = 0;
  const counter = async (c: Client | undefined, expectedNode?: string) => {
    requests++;
    const r = await get(`${url}/app/counter`, c?.cookie, 15_000);
    assert.equal(r.status, 200, `request ${requests} through the balancer: ${r.status} ${r.body}`);
    const f = fields(r.body);
    if (expectedNode !== undefined) assert.equal(f.node, expectedNode, `sticks to ${expectedNode}: ${r.body}`);
    return { r, f };
  };

  // New clients are spread over the nodes; each sticks to the node its cookie names.
  const clients: Client[] = [];
  for (let i = 0; i < 6; i++) {
    const { r, f } = await counter(undefined);
    assert.ok(r.session, 'a new session sets a cookie');
    assert.equal(routeOf(r.session), f.node, 'the cookie names the node that served it');
    clients.push({ cookie: r.session, route: f.node!, count: 1 });
  }
  for (const name of NAMES)
    assert.ok(
      clients.some((c) => c.route === name),
      `round-robin gave ${name} a client: ${clients.map((c) => c.route)}`,
    );
  for (const c of clients)
    for (let i = 0; i < 2; i++) {
      const { f } = await counter(c, c.route);
      assert.equal(Number(f.count), ++c.count);
    }

  // SIGKILL one node: its clients continue elsewhere, latest values, cookie re-issued.
  const victim = clients[0]!.route;
  const killedAt = Date.now();
  cluster.node(victim).kill('SIGKILL');
  const orphans = clients.filter((c) => c.route === victim);
  for (const c of orphans) {
    const { r, f } = await counter(c);
    if (c === orphans[0])
      t.diagnostic(`first request of a ${victim} session answered ${Date.now() - killedAt} ms after SIGKILL`);
    assert.notEqual(f.node, victim);
    assert.equal(Number(f.count), ++c.count, `the count continues on ${f.node}`);
    assert.ok(r.session, 'the cookie is re-issued');
    assert.equal(r.session.slice(0, 33), c.cookie.slice(0, 33), 'same session id');
    assert.equal(routeOf(r.session), f.node, 'the new cookie names the new node');
    c.cookie = r.session;
    c.route = f.node!;
    const again = await counter(c, c.route);
    assert.equal(Number(again.f.count), ++c.count);
  }
  for (const c of clients.filter((x) => !orphans.includes(x))) {
    const { f } = await counter(c, c.route);
    assert.equal(Number(f.count), ++c.count);
  }

  // The node comes back: it holds every session before it serves, and new clients reach it.
  await cluster.node(victim).exited();
  const back = await cluster.startNode(victim);
  for (const c of clients) {
    const r = await get(`${back.url}/app/read`, c.cookie);
    assert.equal(fields(r.body).count, String(c.count), `${victim} holds ${c.cookie} with its latest count`);
  }
  const backAt = Date.now();
  await waitFor(
    async () => {
      const { f } = await counter(undefined);
      return f.node === victim;
    },
    `a new client on the restarted ${victim}`,
    { timeoutMs: maxBackMs, intervalMs: 50 },
  );
  t.diagnostic(
    `${victim} took a new client ${Date.now() - backAt} ms after it was ready; ${requests} requests, none failed`,
  );
}

/**
 * The failover suite for one external balancer, once per session manager: `start` runs it on
 * `listen` in front of the nodes' HTTP ports; skipped with an install hint when `binary` is missing.
 */
export function describeBalancer(
  label: string,
  binary: string,
  start: (path: string, listen: number, nodes: readonly number[]) => Promise<BalancerProcess>,
  maxBackMs: number,
): void {
  const path = which(binary);
  for (const manager of MANAGERS) {
    describe(`${label} in front of three nodes (${manager.name} manager)`, {
      skip: path ? false : `${binary} is not installed (apt-get install ${binary}; .ci/run installs it)`,
    }, () => {
      let cluster: Cluster | undefined;
      let balancer: BalancerProcess | undefined;
      after(async () => {
        await balancer?.stop();
        await cluster?.destroy();
      });

      test('sticky sessions, SIGKILL failover without a failed request, the node comes back', async (t) => {
        cluster = await Cluster.start(manager.cli);
        const [listen] = await freePorts(1);
        balancer = await start(path!, listen!, cluster.httpPorts);
        await failoverScenario(t, `http://127.0.0.1:${listen}`, cluster, { maxBackMs });
      });
    });
  }
}
