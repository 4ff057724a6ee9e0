/**
 * Owner forwarding: a request whose session is served by another node is proxied there over HTTP
 * (one hop, keep-alive) instead of moving the session here. With the BackupManager a session lives
 * on 1 + k nodes; behind a balancer that does not stick (a Kubernetes Service, round robin), most
 * requests land where the session is not, and moving it costs a fetch, a take-over and new copies
 * per request. Forwarding keeps each session on its owner: the node's own sticky routing.
 *
 * Where: the node's request listener, after the context is matched and before the session is
 * looked up (nothing of the request was read yet). Which node: the member that owns the session
 * by this node's copy, else the member the cookie's route names (the node that last served it),
 * when it is alive, serves the context and advertises its HTTP port; its address is its cluster
 * receiver's host (no address from a payload: a member cannot point forwards elsewhere). Never:
 * upgrades (WebSocket), a request already forwarded once (`x-clowder-forwarded`: no loops; a client
 * setting it only gets local serving), a session this node owns.
 *
 * When the owner cannot be reached before it answered, the request is served here instead, as
 * without forwarding (a fetch and take-over): always when the connection failed, and for a request
 * without a body also when the connection broke before any answer (what HAProxy's retry-on
 * empty-response does). A request whose body was already sent gets 502 then (counted).
 */
import { Agent, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import type { Logger } from '../core/logger.js';
import { cookieIdPart, cookieRoute } from '../session/ids.js';
import type { SessionManager } from '../session/session-manager.js';
import type { Mount } from './adapters.js';
import { findCookie } from './cookie.js';
import { endToEndHeaders, forwardedFor } from './hop-headers.js';

/** The header a forwarded request carries (the forwarding node's name): it is never forwarded again. */
export const FORWARDED_HEADER = 'x-clowder-forwarded';

/** Where a session's requests go: the owner's name and HTTP address. */
export interface ForwardTarget {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

export interface OwnerForwardDeps {
  /** This node's route (jvmRoute). */
  readonly localName: string;
  /**
   * The owner of session `id` if another live member serving the manager's context owns it (this
   * node's copy says so, else the cookie's `route` names it); undefined: serve here.
   */
  target(manager: SessionManager, id: string, route: string): ForwardTarget | undefined;
  readonly logger: Logger;
}

/** Counters of owner forwarding (`stats().http.forward`). */
export interface ForwardCounters {
  /** Requests proxied to their session's owner. */
  forwarded: number;
  /** Requests received from another node's forwarding (served here). */
  received: number;
  /** Owner unreachable before it answered: served here instead. */
  servedHere: number;
  /** Owner unreachable after the body was sent, or broke mid-answer: 502 or the response cut. */
  failed: number;
}

/** Serves a request on this node (adapters.ts). */
export type ServeHere = (mount: Mount, req: IncomingMessage, res: ServerResponse, url: string) => void;

/** Errors that prove the owner never received the request. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND']);

export class OwnerForward {
  readonly counters: ForwardCounters = { forwarded: 0, received: 0, servedHere: 0, failed: 0 };
  /** One keep-alive agent per owner address. */
  readonly #agents = new Map<string, Agent>();
  #logged = 0;

  constructor(private readonly deps: OwnerForwardDeps) {}

  /**
   * Proxies `req` to its session's owner and returns true, or returns false (serve it here).
   * `serveHere` serves it here later, when the owner turns out unreachable before it answered.
   * (The adapters' ForwardHook: bind it once, `forward.forward.bind(forward)`.)
   */
  forward(req: IncomingMessage, res: ServerResponse, mount: Mount, url: string, serveHere: ServeHere): boolean {
    const headers = req.headers;
    if (headers[FORWARDED_HEADER] !== undefined) {
      this.counters.received++;
      return false;
    }
    const manager = mount.manager;
    const cookie = findCookie(headers.cookie, manager.config.cookieName);
    if (cookie === undefined) return false;
    const id = cookieIdPart(cookie);
    if (id === undefined || headers.upgrade !== undefined) return false;
    const target = this.deps.target(manager, id, cookieRoute(cookie));
    if (target === undefined) return false;
    this.counters.forwarded++;
    this.#proxy(req, res, target, () => serveHere(mount, req, res, url));
    return true;
  }

  /** Closes the connections to a member that left or died (requests on them end as "unreachable"). */
  drop(host: string, port: number): void {
    const key = `${host}:${port}`;
    const agent = this.#agents.get(key);
    if (agent === undefined) return;
    this.#agents.delete(key);
    agent.destroy();
  }

  /** Closes every connection (the node stops). */
  close(): void {
    for (const a of this.#agents.values()) a.destroy();
    this.#agents.clear();
  }

  #agent(t: ForwardTarget): Agent {
    const key = `${t.host}:${t.port}`;
    let agent = this.#agents.get(key);
    if (agent === undefined) {
      // Bounded per owner (queued beyond that); idle connections kept for the next requests.
      agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, scheduling: 'lifo' });
      this.#agents.set(key, agent);
    }
    return agent;
  }

  #proxy(req: IncomingMessage, res: ServerResponse, t: ForwardTarget, serveHere: () => void): void {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    const out = request({
      agent: this.#agent(t),
      host: t.host,
      port: t.port,
      method: req.method,
      path: req.url,
      headers: this.#requestHeaders(req),
    });
    let answered = false;
    let bodySent = false;
    out.on('response', (answer) => {
      answered = true;
      // Merged with headers set here already (Connection: close while this node stops).
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage ?? '', endToEndHeaders(answer.headers));
      pipeline(answer, res, () => {}); // a broken answer destroys the response
    });
    out.on('error', (err: NodeJS.ErrnoException) => {
      if (answered) {
        this.counters.failed++;
        res.destroy();
        return;
      }
      if (res.headersSent || res.destroyed) return;
      const notConnected = err.code !== undefined && NOT_CONNECTED.has(err.code);
      if (notConnected || !bodySent) {
        // Nothing of the request reached the owner (or it has no body to replay): serve it here.
        this.counters.servedHere++;
        req.unpipe(out);
        serveHere();
        return;
      }
      this.counters.failed++;
      this.#log(t, err);
      res.statusCode = 502;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end(`bad gateway: the session's node ${t.name} broke off (the request may have run there)\n`);
    });
    // The client went away: so does the forwarded request.
    res.on('close', () => {
      if (!res.writableFinished) out.destroy();
    });
    if (!hasBody) {
      out.end();
      return;
    }
    // The body goes only once connected: a refused connection can still be served here, body unread.
    out.once('socket', (socket) => {
      const send = () => {
        bodySent = true;
        req.pipe(out);
      };
      if ((socket as { connecting?: boolean }).connecting) socket.once('connect', send);
      else send();
    });
  }

  #requestHeaders(req: IncomingMessage): Record<string, string | string[]> {
    const out = endToEndHeaders(req.headers);
    out['x-forwarded-for'] = forwardedFor(req);
    if (req.headers['x-forwarded-proto'] === undefined)
      out['x-forwarded-proto'] = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
    if (req.headers.te === 'trailers') out.te = 'trailers';
    out[FORWARDED_HEADER] = this.deps.localName;
    return out;
  }

  #log(t: ForwardTarget, err: Error): void {
    if (this.#logged++ % 100 !== 0) return;
    this.deps.logger.warn(
      { owner: t.name, address: `${t.host}:${t.port}`, err: err.message, failed: this.counters.failed },
      'a forwarded request broke off after its body was sent: answered 502 (logged every 100th; counted in http.forward.failed)',
    );
  }
}
