/**
 * `clowder balancer`'s proxy: sticky on the session cookie's route, redispatching a request whose
 * node cannot be reached to another node (every request whose body was not sent yet; a GET or HEAD
 * also after its connection broke before an answer), bodies streamed both ways, keep-alive
 * connections to the nodes, X-Forwarded-For/-Proto added. For development and the demo: HAProxy
 * and nginx (examples/) are the production answer.
 */
import {
  type ClientRequest,
  createServer,
  type IncomingMessage,
  request,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pipeline } from 'node:stream';
import { type BalancerConfig, type BalancerConfigInput, resolveBalancerConfig } from '../config/balancer-config.js';
import { type Logger, silentLogger } from '../core/logger.js';
import { endToEndHeaders, forwardedFor } from '../http/hop-headers.js';
import { type Backend, BackendPool, routeOf } from './balancer-pool.js';

/** Request counters (`stats()`). */
export interface BalancerStats {
  requests: number;
  /** Requests sent again to another node after a connection failure. */
  redispatched: number;
  /** Requests answered 502/503/504 by the balancer itself. */
  failed: number;
  /** Client connections closed at once because maxConnections were open. */
  refusedConnections: number;
  /** Malformed or oversized request heads, answered 400/431 without reaching a node. */
  badRequests: number;
  backends: { route: string; address: string; up: boolean; requests: number; failures: number }[];
  markedDown: number;
  markedUp: number;
}

/** A connection-level failure: the request may go to another node (when its body is still unsent). */
class ConnectError extends Error {
  constructor(readonly code: string) {
    super(`connect: ${code}`);
  }
}

export class Balancer {
  readonly config: BalancerConfig;
  readonly pool: BackendPool;
  readonly #server: Server;
  readonly #log: Logger;
  readonly #counts = { requests: 0, redispatched: 0, failed: 0, refusedConnections: 0, badRequests: 0 };
  #stopping: Promise<void> | undefined;

  constructor(input: BalancerConfigInput, options: { logger?: Logger } = {}) {
    this.config = resolveBalancerConfig(input);
    this.#log = options.logger ?? silentLogger;
    this.pool = new BackendPool(this.config, this.#log);
    this.#server = createServer(
      {
        maxHeaderSize: this.config.maxHeaderBytes,
        keepAliveTimeout: this.config.keepAliveTimeoutMs,
        headersTimeout: 20_000,
        requestTimeout: 0, // bodies are streamed; the backend's silence is bounded by responseTimeoutMs
      },
      (req, res) => this.#handle(req, res),
    );
    this.#server.maxConnections = this.config.maxConnections;
    this.#server.on('drop', () => this.#counts.refusedConnections++);
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      this.#counts.badRequests++;
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
      else socket.destroy();
    });
  }

  /** Listens and starts the health checks; resolves with the address. */
  async start(): Promise<AddressInfo> {
    this.pool.start();
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.config.port, this.config.host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    return this.address;
  }

  get address(): AddressInfo {
    return this.#server.address() as AddressInfo;
  }

  /** Stops accepting, lets requests in flight finish (shutdownTimeoutMs), then closes the rest. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.pool.stop();
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      this.#server.closeIdleConnections();
      const timer = setTimeout(() => this.#server.closeAllConnections(), this.config.shutdownTimeoutMs);
      await closed;
      clearTimeout(timer);
      this.pool.close();
    })();
    return this.#stopping;
  }

  stats(): BalancerStats {
    return {
      ...this.#counts,
      markedDown: this.pool.stats.markedDown,
      markedUp: this.pool.stats.markedUp,
      backends: this.pool.backends.map((b) => ({
        route: b.route,
        address: b.address,
        up: b.up,
        requests: b.requests,
        failures: b.failures,
      })),
    };
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    this.#counts.requests++;
    if (this.#stopping) res.shouldKeepAlive = false;
    const route = routeOf(req.headers.cookie, this.config.cookieName);
    const headers = forwardHeaders(req);
    // A request with no body can be sent again whatever happened before an answer came (GET and
    // HEAD are idempotent); one with a body only while its body is unsent.
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    const idempotent = !hasBody && (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS');
    const tried = new Set<Backend>();
    let current: ClientRequest | undefined;
    res.on('close', () => {
      if (!res.writableFinished) current?.destroy();
    });

    const attempt = (): void => {
      const backend = this.pool.pick(route, tried);
      if (backend === undefined || tried.size >= this.config.maxAttempts) {
        this.#fail(res, 503, 'no node could take the request\n');
        return;
      }
      if (tried.size > 0) this.#counts.redispatched++;
      tried.add(backend);
      backend.requests++;
      let committed = false;
      const preq = request({
        host: backend.host,
        port: backend.port,
        method: req.method,
        path: req.url,
        headers,
        agent: backend.agent,
        timeout: this.config.responseTimeoutMs,
      });
      current = preq;
      let connectTimer: NodeJS.Timeout | undefined;
      const connected = () => {
        clearTimeout(connectTimer);
        // From here the node may have seen the request: only an idempotent one is sent again.
        committed = true;
        if (hasBody) pipeline(req, preq, () => {});
        else preq.end();
      };
      preq.on('socket', (socket: Socket) => {
        if (!socket.connecting) return connected();
        connectTimer = setTimeout(() => preq.destroy(new ConnectError('ETIMEDOUT')), this.config.connectTimeoutMs);
        socket.once('connect', connected);
      });
      preq.on('timeout', () => preq.destroy(Object.assign(new Error('backend timeout'), { code: 'BACKEND_TIMEOUT' })));
      preq.on('response', (pres) => {
        res.writeHead(pres.statusCode ?? 502, pres.statusMessage, endToEndHeaders(pres.headers));
        pipeline(pres, res, () => {});
      });
      preq.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(connectTimer);
        if (res.headersSent || res.destroyed) {
          res.destroy();
          return;
        }
        const code = err instanceof ConnectError ? err.code : (err.code ?? '');
        if (code === 'BACKEND_TIMEOUT') {
          this.#fail(res, 504, 'the node did not answer in time\n');
          return;
        }
        this.pool.markDown(backend, code || err.message);
        if (!committed || idempotent) attempt();
        else this.#fail(res, 502, 'the node failed while it had the request\n');
      });
    };
    attempt();
  }

  #fail(res: ServerResponse, status: number, body: string): void {
    this.#counts.failed++;
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }
}

/** The client's headers without hop-by-hop ones, plus X-Forwarded-For and X-Forwarded-Proto. */
function forwardHeaders(req: IncomingMessage): Record<string, string | string[]> {
  const out = endToEndHeaders(req.headers);
  out['x-forwarded-for'] = forwardedFor(req);
  out['x-forwarded-proto'] = 'http';
  if (req.headers['transfer-encoding'] !== undefined && req.headers['content-length'] === undefined)
    out['transfer-encoding'] = 'chunked';
  return out;
}
