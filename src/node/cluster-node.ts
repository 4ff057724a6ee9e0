/**
 * A clowder node: the composition root. It starts, in order, the channel (and waits for its
 * membership to settle), one session manager per application (each takes the other nodes'
 * sessions before it is ready), and only then the HTTP server: a node never serves a request
 * before it holds the cluster's sessions. `stop()` is the reverse, gracefully.
 */
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Channel, createChannel } from '../channel/channel.js';
import { type NodeConfig, type NodeConfigInput, resolveNodeConfig } from '../config/node-config.js';
import { type PlacementConfigInput, resolvePlacementConfig } from '../config/placement-config.js';
import { resolveSessionConfig, type SessionConfigInput } from '../config/session-config.js';
import { ClusterError, ConfigError, ErrorCode } from '../core/errors.js';
import { createLogger, type Logger } from '../core/logger.js';
import { isLoopback } from '../core/net.js';
import {
  ClusterRequest,
  ClusterResponse,
  createRequestListener,
  type Mount,
  type RequestListener,
} from '../http/adapters.js';
import { OwnerForward } from '../http/owner-forward.js';
import { statusAllowed } from '../http/proxy-trust.js';
import { createManager } from '../session/create-manager.js';
import type { DeltaManager } from '../session/delta-manager.js';
import { httpPortOf, ReplicationHub } from '../session/replication-hub.js';
import { ownerRouting } from './owner-routing.js';

/**
 * Optional `setup` export of an application module, called before the node starts: register
 * session listeners here (`manager.on('sessionCreated', …)`, `'attributeAdded'`, `'conflict'`, …).
 */
export type AppSetup = (context: { manager: DeltaManager; node: ClusterNode }) => void | Promise<void>;

/** An application given directly (library use) instead of a module path. */
export interface AppDefinition {
  readonly path: string;
  readonly app: RequestListener;
  readonly setup?: AppSetup;
  /** Declares the app's sessions replicable (Tomcat's <distributable/>). Default true when given as an object. */
  readonly distributable?: boolean;
  readonly sessions?: Record<string, unknown>;
}

export interface ClusterNodeOptions extends Omit<NodeConfigInput, 'apps'> {
  /** Applications: `{ path, module }` (loaded at start) or `{ path, app }`. */
  apps: ({ path: string; module: string; sessions?: Record<string, unknown> } | AppDefinition)[];
}

/** Options of one {@link ClusterNode.stop} call. */
export interface StopOptions {
  /**
   * The drain period of this stop in ms, instead of `http.drainMs`; 0 skips the drain, and a
   * stop() with 0 while a drain is under way ends that drain at once (a second SIGTERM/SIGINT).
   */
  readonly drainMs?: number;
}

type State = 'new' | 'starting' | 'ready' | 'stopping' | 'stopped';

export class ClusterNode {
  readonly config: NodeConfig;
  readonly channel: Channel;
  readonly managers: DeltaManager[] = [];
  readonly #logger: Logger;
  readonly #hub: ReplicationHub;
  readonly #given: Map<string, AppDefinition>;
  #server: Server | undefined;
  /** Owner forwarding (http.forward); undefined when off or the HTTP port is not fixed. */
  #forward: OwnerForward | undefined;
  #state: State = 'new';
  /** The shutdown under way once stop() was called (stop() callers and a failing start() await it). */
  #stopping: Promise<void> | undefined;
  #inFlight = 0;
  /** Ends the drain period now; set only while it runs (readiness and stats say `draining` then). */
  #endDrain: (() => void) | undefined;
  /** Status requests refused (not loopback, forwarded by a proxy, or a wrong admin token). */
  #statusRefused = 0;
  readonly #requestClosed = (): void => {
    this.#inFlight--;
  };

  constructor(options: ClusterNodeOptions, deps: { logger?: Logger } = {}) {
    const given = new Map<string, AppDefinition>();
    // Anything else than a list of objects (a config file's `apps: x`) is for resolveNodeConfig to report.
    const listed: unknown[] = Array.isArray(options.apps) ? options.apps : [];
    const mapped = (listed as ClusterNodeOptions['apps']).map((a, i) => {
      if (a !== null && typeof a === 'object' && 'app' in a) {
        if (typeof a.app !== 'function')
          throw new ConfigError(`apps.${i}.app`, 'a request listener function (req, res)');
        given.set(a.path, a);
        return { path: a.path, module: `<inline ${a.path}>`, sessions: a.sessions };
      }
      return a;
    });
    // Every component (cluster, sessions of each application, placement) is validated here, all
    // problems reported at once, so nothing below throws a config error.
    this.config = resolveNodeConfig({ ...options, apps: Array.isArray(options.apps) ? mapped : options.apps });
    this.#given = given;
    const base = deps.logger ?? createLogger();
    this.#logger = base.child({ node: this.config.name ?? (this.config.cluster as { name?: string }).name });
    const channelConfig = { ...this.config.cluster, ...(this.config.name ? { name: this.config.name } : {}) };
    // The channel binds the node's name itself: given this node's logger, every line would carry it twice.
    this.channel = createChannel(channelConfig, { logger: base });
    this.#hub = new ReplicationHub(
      this.channel,
      this.#logger,
      resolvePlacementConfig(this.config.placement as PlacementConfigInput, 'placement'),
    );
  }

  /** An application's session settings: its own over the node-wide ones, with the node's proxy trust. */
  #sessionInput(app: NodeConfig['apps'][number]): SessionConfigInput {
    return { ...this.config.sessions, ...app.sessions, contextPath: app.path, trustProxy: this.config.http.trustProxy };
  }

  /** The node's name (jvmRoute). */
  get name(): string {
    return this.channel.config.name;
  }

  /** True once the node serves requests. */
  get ready(): boolean {
    return this.#state === 'ready';
  }

  /** The HTTP address once listening. */
  get address(): { host: string; port: number } {
    const a = this.#server?.address();
    if (!a || typeof a === 'string') throw new ClusterError(ErrorCode.NOT_STARTED, 'the node is not listening');
    return { host: a.address, port: a.port };
  }

  async start(): Promise<void> {
    if (this.#state !== 'new') throw new ClusterError(ErrorCode.STOPPED, `node cannot start from state ${this.#state}`);
    this.#state = 'starting';
    try {
      const mounts: Mount[] = [];
      for (const [i, app] of this.config.apps.entries()) {
        const { listener, distributable, setup } = await this.#load(app.path, app.module, i);
        const config = resolveSessionConfig(this.#sessionInput(app), `apps.${i}.sessions`);
        if (!distributable) {
          this.#logger.warn(
            { app: app.path },
            'application is not distributable (export const distributable = true): its sessions stay on this node',
          );
        }
        const manager = createManager(config, this.#hub, this.#logger.child({ context: app.path }), distributable);
        this.managers.push(manager);
        // The app may register session listeners (created, destroyed, attribute events, conflict).
        await setup?.({ manager, node: this });
        mounts.push({ contextPath: app.path, manager, app: listener });
      }
      this.#forward = this.#ownerForward();
      await this.channel.start();
      await this.channel.settled();
      this.#stillStarting();
      await Promise.all(this.managers.map((m) => m.start()));
      this.#stillStarting();
      const forward = this.#forward;
      const listener = createRequestListener(mounts, forward && { forward: forward.forward.bind(forward) });
      const statusPath = this.config.http.statusPath;
      const server = createServer({ IncomingMessage: ClusterRequest, ServerResponse: ClusterResponse }, (req, res) => {
        this.#inFlight++;
        res.onClosed = this.#requestClosed;
        // Stopping (drain and shutdown): the client (or balancer) opens its next request elsewhere.
        if (this.#state === 'stopping') res.setHeader('Connection', 'close');
        if (statusPath !== '' && req.url?.startsWith(statusPath) && this.#status(req, res, statusPath)) return;
        listener(req as IncomingMessage, res as ServerResponse);
      });
      server.keepAliveTimeout = 5000;
      this.#server = server;
      await new Promise<void>((resolvePromise, reject) => {
        server.once('error', reject);
        server.listen({ host: this.config.http.host, port: this.config.http.port }, () => {
          server.off('error', reject);
          resolvePromise();
        });
      });
      this.#stillStarting();
      this.#state = 'ready';
      const { host, port } = this.address;
      this.#logger.info({ http: `http://${host}:${port}`, apps: this.config.apps.map((a) => a.path) }, 'node ready');
    } catch (err) {
      if (this.#state === 'starting') {
        this.#state = 'stopping';
        this.#stopping = this.#shutdown();
        await this.#stopping;
        this.#state = 'stopped';
        throw err;
      }
      // stop() was called meanwhile (SIGTERM during the state transfer): let its shutdown end,
      // then close what this start opened after it ran (the HTTP server).
      await this.#stopping;
      await this.#shutdown();
      if (err instanceof ClusterError && err.code === ErrorCode.STOPPED) throw err;
      throw new ClusterError(ErrorCode.STOPPED, 'the node was stopped before it was ready', { cause: err });
    }
  }

  /**
   * Owner forwarding (http/owner-forward.ts), unless http.forward is "off", no application uses
   * it, or the HTTP port is 0 (not known before the channel starts: nothing to advertise).
   */
  #ownerForward(): OwnerForward | undefined {
    const { forward: mode, port } = this.config.http;
    if (mode === 'off') return undefined;
    if (mode === 'auto' && !this.managers.some((m) => m.config.manager === 'backup')) return undefined;
    if (port === 0) {
      this.#logger.info({}, 'owner forwarding off: http.port is 0 (a fixed port is advertised to the other nodes)');
      return undefined;
    }
    // The others reach this node's HTTP port at its receiver's address: not if HTTP binds loopback only.
    const receiver = this.channel.config.receiver.address;
    if (isLoopback(this.config.http.host) && !isLoopback(receiver)) {
      this.#logger.info(
        { httpHost: this.config.http.host, receiver },
        'owner forwarding off: HTTP listens on loopback only, the other nodes could not reach it (bind http.host to an address they reach)',
      );
      return undefined;
    }
    this.#hub.advertiseHttpPort(port);
    const forward = new OwnerForward({
      localName: this.name,
      target: ownerRouting(mode, this.#hub),
      logger: this.#logger.child({ component: 'forward' }),
    });
    // Connections to a member that left or died end now (their requests are served here instead).
    this.channel.on('memberRemoved', (m) => {
      const httpPort = httpPortOf(m);
      if (httpPort !== undefined) forward.drop(m.host, httpPort);
    });
    return forward;
  }

  /** Throws ERR_CLOWDER_STOPPED when stop() was called while start() awaited. */
  #stillStarting(): void {
    if (this.#state !== 'starting')
      throw new ClusterError(ErrorCode.STOPPED, 'the node was stopped before it was ready');
  }

  /**
   * Graceful stop. A serving node first drains (`http.drainMs`, or `options.drainMs`): readiness
   * answers 503 at once while new and in-flight requests are still served, each with
   * `Connection: close`, so that balancers take the node out before it stops accepting. Then it
   * stops accepting, lets in-flight requests finish (up to `http.shutdownTimeoutMs`), closes idle
   * connections, flushes replication and leaves the cluster. Sessions elsewhere stay (unless
   * expireSessionsOnShutdown). Calling it again while stopping returns the same promise;
   * `{ drainMs: 0 }` then ends the drain at once.
   * @throws ConfigError when `options.drainMs` is not an integer from 0 to 600000.
   */
  async stop(options: StopOptions = {}): Promise<void> {
    const drainMs = options.drainMs ?? this.config.http.drainMs;
    if (!Number.isInteger(drainMs) || drainMs < 0 || drainMs > 600_000)
      throw new ConfigError('drainMs', 'milliseconds from 0 to 600000 (0 = no drain)', drainMs);
    if (this.#state === 'stopped') return;
    if (this.#state === 'stopping') {
      if (drainMs === 0) this.#endDrain?.();
      return this.#stopping;
    }
    if (this.#state === 'new') {
      this.#state = 'stopped';
      return;
    }
    // While starting, the shutdown also ends a state transfer in progress (start() then rejects
    // with ERR_CLOWDER_STOPPED at once, instead of waiting for its donor or the timeout); only a
    // node that served drains.
    const serving = this.#state === 'ready';
    this.#state = 'stopping';
    this.#stopping = (serving ? this.#drain(drainMs) : Promise.resolve())
      .then(() => this.#shutdown())
      .then(() => {
        this.#state = 'stopped';
        this.#logger.info({}, 'node stopped');
      });
    return this.#stopping;
  }

  /** Readiness 503 and `Connection: close` on every response, for `ms` (or until stop({ drainMs: 0 })). */
  async #drain(ms: number): Promise<void> {
    if (ms === 0) return;
    this.#logger.info({ drainMs: ms, inFlight: this.#inFlight }, 'draining: readiness 503, still serving');
    const t0 = Date.now();
    await new Promise<void>((resolvePromise) => {
      const timer = setTimeout(resolvePromise, ms);
      this.#endDrain = () => {
        clearTimeout(timer);
        resolvePromise();
      };
    });
    this.#endDrain = undefined;
    this.#logger.info({ drainedMs: Date.now() - t0, inFlight: this.#inFlight }, 'drain ended: no longer accepting');
  }

  /** Counters of the channel and every session manager. */
  stats(): Record<string, unknown> {
    return {
      node: this.name,
      ready: this.ready,
      draining: this.#endDrain !== undefined,
      inFlight: this.#inFlight,
      http: {
        statusRefused: this.#statusRefused,
        forward: this.#forward === undefined ? undefined : { ...this.#forward.counters },
      },
      channel: this.channel.stats(),
      rejoins: { ...this.#hub.rejoins },
      sessions: this.managers.map((m) => m.stats()),
    };
  }

  /**
   * `<statusPath>/ready` (200 once serving, 503 while stopping) and `<statusPath>/stats` (JSON
   * counters), answered to loopback clients whose request no proxy forwarded, and to any client
   * with the admin token (see http/proxy-trust.ts); others get 403, counted as
   * `http.statusRefused`. Returns false when the path is not ours.
   */
  #status(req: IncomingMessage, res: ServerResponse, base: string): boolean {
    const path = req.url!.slice(base.length).split('?')[0];
    if (path !== '/ready' && path !== '/stats') return false;
    const headers = { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' };
    if (!statusAllowed(req, this.config.http.adminToken)) {
      this.#statusRefused++;
      res
        .writeHead(403, headers)
        .end(
          'forbidden: the status endpoints answer loopback clients that no proxy forwarded, ' +
            'or a request with the admin token (Authorization: Bearer)\n',
        );
      return true;
    }
    if (path === '/ready') {
      const ok = this.#state === 'ready';
      res
        .writeHead(ok ? 200 : 503, headers)
        .end(ok ? 'ready\n' : this.#endDrain !== undefined ? 'draining\n' : `${this.#state}\n`);
    } else {
      res
        .writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' })
        .end(`${JSON.stringify(this.stats())}\n`);
    }
    return true;
  }

  async #shutdown(): Promise<void> {
    const server = this.#server;
    if (server) {
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      const deadline = Date.now() + this.config.http.shutdownTimeoutMs;
      while (this.#inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      server.closeAllConnections();
      await closed;
    }
    this.#forward?.close();
    for (const m of this.managers) await m.stop();
    await this.channel.stop();
  }

  async #load(
    path: string,
    module: string,
    i: number,
  ): Promise<{ listener: RequestListener; distributable: boolean; setup?: AppSetup }> {
    const given = this.#given.get(path);
    if (given) return { listener: given.app, distributable: given.distributable ?? true, setup: given.setup };
    // A path (relative to the working directory), or a package name; a bare name that is a file
    // here (`--app /app=examples/app.mjs`) is that file, as `node examples/app.mjs` would take it.
    const isPath = module.startsWith('.') || isAbsolute(module) || (await isFile(resolve(module)));
    const specifier = isPath ? pathToFileURL(resolve(module)).href : module;
    let mod: { default?: unknown; distributable?: unknown; setup?: unknown };
    try {
      mod = await import(specifier);
    } catch (err) {
      // Only "this module does not exist" is a config error; anything else (the module threw, has
      // a syntax error, or imports a missing package) is the application's own error: say which
      // module, and keep its error and stack as the cause.
      if (isMissing(err, isPath ? resolve(module) : module))
        throw new ConfigError(`apps.${i}.module`, `a module that exists (${(err as Error).message})`, module);
      throw new ClusterError(
        ErrorCode.APP_LOAD,
        `application module ${module} (apps.${i}.module) threw while loading: ${(err as Error)?.message ?? String(err)}`,
        { cause: err },
      );
    }
    const listener = mod.default as RequestListener & { distributable?: unknown };
    if (typeof listener !== 'function') {
      throw new ConfigError(
        `apps.${i}.module`,
        'a module whose default export is a request listener (req, res) or an Express app',
        module,
      );
    }
    if (mod.setup !== undefined && typeof mod.setup !== 'function') {
      throw new ConfigError(
        `apps.${i}.module`,
        'a module whose "setup" export, if any, is a function ({ manager, node }) => void',
        module,
      );
    }
    return {
      listener,
      distributable: mod.distributable === true || listener.distributable === true,
      setup: mod.setup as AppSetup | undefined,
    };
  }
}

/** True when `err` says `what` (a file path or a package name) itself was not found, not something it imports. */
function isMissing(err: unknown, what: string): boolean {
  const e = err as NodeJS.ErrnoException | undefined;
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' && e?.code !== 'ERR_UNSUPPORTED_DIR_IMPORT') return false;
  return e.message.includes(`'${what}'`) || e.message.includes(`"${what}"`);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Creates a node (validated now: a bad key throws ConfigError before anything starts). */
export function createClusterNode(options: ClusterNodeOptions, deps?: { logger?: Logger }): ClusterNode {
  return new ClusterNode(options, deps);
}
