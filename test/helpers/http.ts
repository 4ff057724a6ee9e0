/**
 * Test helpers for the HTTP side: a tiny keep-alive client over node:http, a cookie jar for the
 * session cookie, and `startNodes(n)`: n ClusterNodes (the counter example by default) on an
 * isolated multicast group, started and seeing each other.
 */
import { once } from 'node:events';
import http, { type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  type ClusterNode,
  type ClusterNodeOptions,
  createClusterNode,
  createLogger,
  type DeltaManager,
  type Logger,
  type SessionHandle,
  silentLogger,
} from '../../src/index.js';
import { isolatedMulticast, waitFor } from './wait.js';

/** The counter example app (examples/counter/app.mjs), as an absolute path. */
export const COUNTER_APP = fileURLToPath(new URL('../../../examples/counter/app.mjs', import.meta.url));

/** What an inline app sees: the request with clowder's additions. */
export type SessionRequest = IncomingMessage & {
  readonly session: SessionHandle;
  getSession(create?: boolean): SessionHandle | undefined;
  readonly jvmRoute: string;
};

export interface HttpResponse {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
  /** Every Set-Cookie header line. */
  setCookie: string[];
}

let agent = new http.Agent({ keepAlive: true });

/**
 * GET http://127.0.0.1:<port><path>, with `cookie` as the Cookie header (keep-alive); fails after
 * `timeoutMs` (10 s) without an answer.
 */
export function get(port: number, path: string, cookie?: string, timeoutMs = 10_000): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path, agent, headers: cookie ? { cookie } : {} },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            headers: res.headers,
            setCookie: res.headers['set-cookie'] ?? [],
          }),
        );
      },
    );
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${path} on port ${port} timed out`)));
  });
}

/**
 * One keep-alive HTTP connection the test writes to directly: `send` puts a request into the
 * server's socket at an exact point of the test (one synchronous write), where `get` would write
 * it later. Responses are read in order, as node:http sends them (chunked).
 */
export class RawConnection {
  #text = '';
  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.#text += d;
    });
  }

  static async open(port: number): Promise<RawConnection> {
    const socket = connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    return new RawConnection(socket);
  }

  /** Writes `GET path` now. */
  send(path: string, cookie?: string): void {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: test\r\n${cookie ? `Cookie: ${cookie}\r\n` : ''}\r\n`);
  }

  /** The body of the next response. */
  async body(): Promise<string> {
    // Where the response ends (after the last chunk), once it is all here.
    const end = await waitFor(() => {
      const i = this.#text.indexOf('\r\n0\r\n\r\n');
      return i < 0 ? 0 : i + 7;
    }, 'a response on the raw connection');
    const response = this.#text.slice(0, end);
    this.#text = this.#text.slice(end);
    // The chunks of a chunked body: size line, data.
    let rest = response.slice(response.indexOf('\r\n\r\n') + 4);
    let body = '';
    for (let size = Number.parseInt(rest, 16); size > 0; size = Number.parseInt(rest, 16)) {
      const at = rest.indexOf('\r\n') + 2;
      body += rest.slice(at, at + size);
      rest = rest.slice(at + size + 2);
    }
    return body;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Closes the client's idle keep-alive sockets (the agent stays usable). */
export function closeClient(): void {
  agent.destroy();
  agent = new http.Agent({ keepAlive: true });
}

/** The `NAME=value` pair of the session cookie in a response's Set-Cookie lines, or undefined. */
export function sessionCookie(res: HttpResponse | string[], name = 'JSESSIONID'): string | undefined {
  const lines = Array.isArray(res) ? res : res.setCookie;
  for (const line of lines) {
    if (line.startsWith(`${name}=`)) return line.slice(0, line.indexOf(';') < 0 ? undefined : line.indexOf(';'));
  }
  return undefined;
}

/** The Set-Cookie line of the session cookie, or undefined. */
export function sessionCookieLine(res: HttpResponse, name = 'JSESSIONID'): string | undefined {
  return res.setCookie.find((l) => l.startsWith(`${name}=`));
}

/** Session id part of `JSESSIONID=<id>.<route>`. */
export function idOf(cookie: string): string {
  const value = cookie.slice(cookie.indexOf('=') + 1);
  const dot = value.indexOf('.');
  return dot < 0 ? value : value.slice(0, dot);
}

/** Route part of `JSESSIONID=<id>.<route>`. */
export function routeOf(cookie: string): string {
  const value = cookie.slice(cookie.indexOf('=') + 1);
  const dot = value.indexOf('.');
  return dot < 0 ? '' : value.slice(dot + 1);
}

/** A one-cookie jar: remembers the session cookie of the last response that set one. */
export class CookieJar {
  cookie: string | undefined;
  constructor(readonly name = 'JSESSIONID') {}
  /** GET through the jar: sends the cookie, keeps a new one. */
  async get(port: number, path: string): Promise<HttpResponse> {
    const res = await get(port, path, this.cookie);
    this.update(res);
    return res;
  }
  /** Keeps the session cookie a response sets; a cleared one (empty, Max-Age=0) empties the jar. */
  update(res: HttpResponse): void {
    const line = res.setCookie.find((l) => l.startsWith(`${this.name}=`));
    if (line === undefined) return;
    const c = sessionCookie(res, this.name)!;
    this.cookie = c === `${this.name}=` || /;\s*Max-Age=0(;|$)/i.test(line) ? undefined : c;
  }
  get id(): string {
    if (this.cookie === undefined) throw new Error('no session cookie yet');
    return idOf(this.cookie);
  }
}

/** `key=value` field of a counter app body ("count=3 node=a id=…"). */
export function field(body: string, key: string): string | undefined {
  return new RegExp(`(?:^|\\s)${key}=(\\S*)`).exec(body)?.[1];
}

/** The count a counter app body reports. */
export function countOf(body: string): number {
  const v = field(body, 'count');
  if (v === undefined) throw new Error(`no count in ${JSON.stringify(body)}`);
  return Number(v);
}

export interface StartOptions {
  /** Node names (jvmRoutes); default a, b, c, … */
  names?: string[];
  /** Applications; default the counter example at /app. */
  apps?: ClusterNodeOptions['apps'];
  /** Session defaults for every node. */
  sessions?: Record<string, unknown>;
  /** Channel settings merged into each node's cluster config (domain, receiver, membership are set). */
  cluster?: Record<string, unknown>;
  /** Per-node overrides (by index), merged over the rest. */
  perNode?: (i: number, name: string) => Partial<ClusterNodeOptions>;
}

/** Logger for test nodes: silent unless CLOWDER_TEST_LOG is set (a pino level). */
function testLogger(): Logger {
  const level = process.env.CLOWDER_TEST_LOG;
  return level ? createLogger(level) : silentLogger;
}

/** Nodes on one isolated multicast group; everything it creates is stopped by stop(). */
export class TestCluster {
  readonly multicast = isolatedMulticast();
  readonly nodes: ClusterNode[] = [];
  readonly #created: ClusterNode[] = [];

  constructor(readonly defaults: StartOptions = {}) {}

  /** The options of node `name` on this cluster's group. */
  options(name: string, i = this.#created.length, extra: Partial<ClusterNodeOptions> = {}): ClusterNodeOptions {
    const d = this.defaults;
    const per = d.perNode?.(i, name) ?? {};
    const { port, domain } = this.multicast;
    return {
      name,
      // No drain on stop (test/e2e/drain.test.ts tests it): these nodes have no balancer to tell.
      http: { port: 0, drainMs: 0 },
      apps: d.apps ?? [{ path: '/app', module: COUNTER_APP }],
      cluster: {
        domain,
        receiver: { port: 0 },
        membership: { type: 'multicast', port, frequencyMs: 100, dropTimeMs: 1000 },
        ...d.cluster,
      },
      sessions: { ...d.sessions },
      ...per,
      ...extra,
    };
  }

  /** Creates (does not start) a node on this cluster; stop() will stop it. */
  create(name: string, extra: Partial<ClusterNodeOptions> = {}): ClusterNode {
    const node = createClusterNode(this.options(name, this.#created.length, extra), { logger: testLogger() });
    this.#created.push(node);
    return node;
  }

  /** Creates and starts a node, then waits until every started node sees every other. */
  async add(name: string, extra: Partial<ClusterNodeOptions> = {}): Promise<ClusterNode> {
    const node = this.create(name, extra);
    await node.start();
    this.nodes.push(node);
    await this.formed();
    return node;
  }

  /** Waits until each node in `nodes` sees all the others. */
  async formed(timeoutMs = 15_000): Promise<void> {
    const n = this.nodes.length;
    await waitFor(() => this.nodes.every((x) => x.channel.members().length === n - 1), `${n} nodes to see each other`, {
      timeoutMs,
    });
  }

  /** Node by name. */
  node(name: string): ClusterNode {
    const n = this.nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  /** Stops every node this cluster created, then throws what any stop threw; closes idle client sockets. */
  async stop(): Promise<void> {
    const outcomes = await Promise.allSettled(this.#created.map((n) => n.stop()));
    closeClient();
    throwFailures(outcomes, 'stopping the test cluster');
  }
}

/** HTTP port of a node. */
export function portOf(node: ClusterNode): number {
  return node.address.port;
}

/** The session manager of a node's first (or `i`th) application. */
export function managerOf(node: ClusterNode, i = 0): DeltaManager {
  const m = node.managers[i];
  if (m === undefined) throw new Error(`node ${node.name} has no manager ${i}`);
  return m;
}

/**
 * Starts `n` ClusterNodes (the counter app at /app unless `options.apps`) on an isolated multicast
 * group, at the same time, and waits until each sees the others. On failure everything started
 * is stopped before the error is rethrown; otherwise call `cluster.stop()` (in after/finally).
 */
export async function startNodes(n: number, options: StartOptions = {}): Promise<TestCluster> {
  const cluster = new TestCluster(options);
  const names = options.names ?? Array.from({ length: n }, (_, i) => String.fromCharCode(97 + i));
  try {
    const nodes = names.slice(0, n).map((name) => cluster.create(name));
    await Promise.all(nodes.map((x) => x.start()));
    cluster.nodes.push(...nodes);
    await cluster.formed();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/** Two started nodes and their HTTP ports, for tests that write on one node and read on the other. */
export async function startPair(options: StartOptions = {}): Promise<{ cluster: TestCluster; pa: number; pb: number }> {
  const cluster = await startNodes(2, options);
  return { cluster, pa: portOf(cluster.node('a')), pb: portOf(cluster.node('b')) };
}

/** Stops clusters (for after hooks); tolerates undefined; every one is stopped before an error is thrown. */
export async function stopAll(...clusters: (TestCluster | undefined)[]): Promise<void> {
  throwFailures(await Promise.allSettled(clusters.map((c) => c?.stop())), 'stopping test clusters');
}

/**
 * After Promise.allSettled: throws the one rejection, or an AggregateError of several, so that a
 * stop that fails is never hidden by cleanup code that had to try every stop first.
 */
export function throwFailures(outcomes: PromiseSettledResult<unknown>[], what: string): void {
  const errors = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} failures ${what}`);
}
