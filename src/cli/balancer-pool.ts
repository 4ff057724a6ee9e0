/**
 * The balancer's backends: which node a request goes to (its cookie's route while that node is up,
 * else round-robin among those up), health checks at an interval, and marking a node down at once
 * when a connection to it fails (a SIGKILLed node refuses connections long before a check runs).
 */
import { Agent, request } from 'node:http';
import type { BackendConfig, BalancerConfig } from '../config/balancer-config.js';
import type { Logger } from '../core/logger.js';

/** One node behind the balancer. */
export class Backend {
  up = true;
  /** Keep-alive connections to this node; replaced when it goes down (its idle sockets are dead). */
  agent: Agent;
  requests = 0;
  failures = 0;
  readonly #maxSockets: number;

  constructor(
    readonly route: string,
    readonly host: string,
    readonly port: number,
    maxSockets: number,
  ) {
    this.#maxSockets = maxSockets;
    this.agent = this.#newAgent();
  }

  #newAgent(): Agent {
    return new Agent({ keepAlive: true, maxSockets: this.#maxSockets, maxFreeSockets: 64, scheduling: 'lifo' });
  }

  /** Drops every pooled connection (they lead to a dead process) and starts a fresh pool. */
  resetAgent(): void {
    const old = this.agent;
    this.agent = this.#newAgent();
    old.destroy();
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }
}

/** Counters of the pool, for tests and the stop log line. */
export interface PoolStats {
  markedDown: number;
  markedUp: number;
  healthChecks: number;
}

export class BackendPool {
  readonly backends: readonly Backend[];
  readonly stats: PoolStats = { markedDown: 0, markedUp: 0, healthChecks: 0 };
  readonly #byRoute = new Map<string, Backend>();
  readonly #config: BalancerConfig;
  readonly #log: Logger;
  #next = 0;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;

  constructor(config: BalancerConfig, log: Logger) {
    this.#config = config;
    this.#log = log;
    this.backends = config.backends.map(
      (b: BackendConfig) => new Backend(b.route, b.host, b.port, config.maxSocketsPerBackend),
    );
    for (const b of this.backends) this.#byRoute.set(b.route, b);
  }

  /**
   * The backend for a request whose cookie names `route` ('' for none), skipping those in `tried`:
   * the named node while it is up, else the next one up in round-robin order, else (all down) the
   * next untried one anyway (a check may lag behind a node that just came back).
   */
  pick(route: string, tried: ReadonlySet<Backend>): Backend | undefined {
    const sticky = route === '' ? undefined : this.#byRoute.get(route);
    if (sticky?.up && !tried.has(sticky)) return sticky;
    const n = this.backends.length;
    let fallback: Backend | undefined;
    for (let i = 0; i < n; i++) {
      const b = this.backends[(this.#next + i) % n]!;
      if (tried.has(b)) continue;
      if (b.up) {
        this.#next = (this.#next + i + 1) % n;
        return b;
      }
      fallback ??= b;
    }
    return fallback;
  }

  /** A connection to `b` failed: no new request goes there until a health check passes. */
  markDown(b: Backend, reason: string): void {
    b.failures++;
    if (!b.up) return;
    b.up = false;
    b.resetAgent();
    this.stats.markedDown++;
    this.#log.warn({ backend: b.route, address: b.address, reason }, 'backend down');
  }

  #markUp(b: Backend): void {
    if (b.up) return;
    b.up = true;
    this.stats.markedUp++;
    this.#log.info({ backend: b.route, address: b.address }, 'backend up');
  }

  /** Starts the periodic health checks (the first at once). */
  start(): void {
    void this.checkAll();
    this.#timer = setInterval(() => void this.checkAll(), this.#config.healthIntervalMs);
  }

  /** Stops the health checks (connections to the nodes stay for requests in flight). */
  stop(): void {
    clearInterval(this.#timer);
  }

  /** Closes every connection to the nodes (after the requests in flight ended). */
  close(): void {
    for (const b of this.backends) b.agent.destroy();
  }

  /** Checks every backend once; a round still running is not overlapped: its end is awaited instead. */
  checkAll(): Promise<void> {
    this.#round ??= Promise.all(
      this.backends.map(async (b) => {
        const ok = await this.#check(b);
        this.stats.healthChecks++;
        if (ok) this.#markUp(b);
        else this.markDown(b, 'health check');
      }),
    ).then(() => {
      this.#round = undefined;
    });
    return this.#round;
  }

  /** GET healthPath on a fresh connection (not forwarded: the node's status endpoints answer it). */
  #check(b: Backend): Promise<boolean> {
    return new Promise((resolve) => {
      const req = request(
        {
          host: b.host,
          port: b.port,
          path: this.#config.healthPath,
          agent: false,
          timeout: this.#config.healthTimeoutMs,
        },
        (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
      req.end();
    });
  }
}

/**
 * The route of the session cookie `name` in a Cookie header: what follows the last "." of its
 * value ('' when there is no such cookie or no route). Reads the header in place (no split).
 */
export function routeOf(cookieHeader: string | undefined, name: string): string {
  if (cookieHeader === undefined) return '';
  let from = 0;
  while (from < cookieHeader.length) {
    const at = cookieHeader.indexOf(name, from);
    if (at < 0) return '';
    const end = at + name.length;
    // A whole cookie name: at the start or after ";" (and optional spaces), and followed by "=".
    const before = at === 0 ? ';' : cookieHeader[at - 1];
    if ((before === ';' || before === ' ') && cookieHeader[end] === '=') {
      let stop = cookieHeader.indexOf(';', end);
      if (stop < 0) stop = cookieHeader.length;
      const dot = cookieHeader.lastIndexOf('.', stop - 1);
      return dot > end ? cookieHeader.slice(dot + 1, stop).trim() : '';
    }
    from = end;
  }
  return '';
}
