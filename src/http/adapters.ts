/**
 * Two ways to put clowder sessions in front of an application, over the same session manager:
 * - `sessionMiddleware(manager)`: Express/Connect middleware, `(req, res, next)`;
 * - `createRequestListener(mounts)`: a node:http request listener that mounts plain
 *   `(req, res)` applications (an Express app works too) at their context paths. Use it with
 *   `http.createServer({ IncomingMessage: ClusterRequest, ServerResponse: ClusterResponse }, listener)`
 *   so that `req.session` and the end-of-request replication cost no per-request closures.
 * Both answer 503 (Retry-After) while the node is still receiving the other nodes' sessions, and
 * (sessions.serialize) to a request that waited too long for its session's turn.
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode } from '../core/errors.js';
import type { SessionManager } from '../session/session-manager.js';
import { requestPath } from './request-lifecycle.js';
import { RequestSession } from './request-session.js';
import type { SessionHandle } from './session-handle.js';

const kSession = Symbol('clowder.requestSession');

type AnyRequest = IncomingMessage & { [kSession]?: RequestSession; originalUrl?: string };

/** A request listener the node mounts; an Express app is one. */
export type RequestListener = (req: IncomingMessage, res: ServerResponse) => unknown;

function notReady(res: ServerResponse): void {
  res.statusCode = 503;
  res.setHeader('Retry-After', '1');
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end('starting: receiving sessions from the cluster\n');
}

/**
 * sessions.serialize: the request waited longer than serializeTimeoutMs for the other requests of
 * its session (or too many waited already). A client may retry; nothing of the session changed.
 */
export function serializeBusy(res: ServerResponse): void {
  res.statusCode = 503;
  res.setHeader('Retry-After', '1');
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end('busy: other requests of this session are still running (sessions.serialize); retry\n');
}

/** `close` before `finish`: the client went away; the request still ends for its session. */
function onClose(this: ServerResponse): void {
  (this.req as AnyRequest)[kSession]?.finish();
}

/**
 * Express/Connect middleware: `app.use(sessionMiddleware(manager))`. Provides `req.session`
 * (created when a request first writes to it) and replicates what the request changed when the response ends.
 */
export function sessionMiddleware(
  manager: SessionManager,
): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
  const config = manager.config;
  return (req, res, next) => {
    if (!manager.ready) {
      notReady(res);
      return;
    }
    // The filters see the whole path, as on a node: Express strips its mount path from req.url.
    const rs = new RequestSession(manager, config, req, res, requestPath((req as AnyRequest).originalUrl ?? req.url));
    (req as AnyRequest)[kSession] = rs;
    decorate(req);
    replicateBeforeEnd(res, rs);
    res.on('close', onClose);
    if (rs.ready === undefined) {
      if (rs.busy) serializeBusy(res);
      else next();
    } else
      rs.ready.then(() => {
        if (rs.abandoned) return;
        if (rs.busy) serializeBusy(res);
        else next();
      }, next);
  };
}

/** IncomingMessage with `req.session`: no per-request property definitions. */
export class ClusterRequest extends IncomingMessage {
  [kSession]?: RequestSession;
  /** The URL before the context path was stripped (Express's `originalUrl`). */
  originalUrl?: string;
  /** The context path the request was routed to. */
  contextPath?: string;

  /** Tomcat's getSession(create): with `false`, the existing session or undefined (nothing is created). */
  declare getSession: (create?: boolean) => SessionHandle | undefined;
  // session, sessionID and jvmRoute: shared accessors on the prototype (DECORATION, below); typed
  // on IncomingMessage by types.ts.
}

/**
 * ServerResponse whose end() first replicates the request's session changes, and whose close
 * (finished or aborted) ends the request for its session without a per-request listener.
 */
export class ClusterResponse<R extends IncomingMessage = IncomingMessage> extends ServerResponse<R> {
  /** Called once when this response closes (the node counts requests in flight with it). */
  onClosed: ((res: ClusterResponse<R>) => void) | undefined = undefined;

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'close') {
      (this.req as AnyRequest)[kSession]?.finish();
      this.onClosed?.(this);
    }
    return super.emit(event, ...args);
  }

  /** end() was called and waits for the replication (see RequestSession.finish). */
  #ending = false;

  override end(...args: unknown[]): this {
    // Like a response that already ended: a second end() while the first waits changes nothing.
    if (this.#ending) return this;
    const rs = (this.req as AnyRequest)[kSession];
    if (rs !== undefined) {
      const p = rs.finish();
      if (p !== undefined) {
        this.#ending = true;
        p.then(() => super.end(...(args as [])));
        return this;
      }
    }
    return super.end(...(args as []));
  }
}

/** An application mounted at a context path with its session manager. */
export interface Mount {
  readonly contextPath: string;
  readonly manager: SessionManager;
  readonly app: RequestListener;
}

/**
 * Proxies a request to its session's owner and returns true, or returns false to serve it here;
 * `serveHere(mount, req, res, url)` serves it here later (the owner was unreachable). See owner-forward.ts.
 */
export type ForwardHook = (
  req: IncomingMessage,
  res: ServerResponse,
  mount: Mount,
  url: string,
  serveHere: typeof serve,
) => boolean;

/**
 * A node:http request listener that routes each request to the mount whose context path
 * prefixes it (longest first), strips the prefix from `req.url` like Express's mounting
 * (`req.originalUrl` keeps it), and answers 404 for anything else. With `forward`, a request
 * whose session another node owns may be proxied there first.
 */
export function createRequestListener(
  mounts: readonly Mount[],
  options: { forward?: ForwardHook } = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const sorted = [...mounts].sort((a, b) => b.contextPath.length - a.contextPath.length);
  const forward = options.forward;
  return (req, res) => {
    const url = req.url ?? '/';
    let mount: Mount | undefined;
    for (const m of sorted) {
      const p = m.contextPath;
      if (
        p === '/' ||
        (url.startsWith(p) && (url.length === p.length || url[p.length] === '/' || url[p.length] === '?'))
      ) {
        mount = m;
        break;
      }
    }
    if (mount === undefined) {
      res.statusCode = 404;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end('not found\n');
      return;
    }
    if (!mount.manager.ready) {
      notReady(res);
      return;
    }
    if (forward?.(req, res, mount, url, serve)) return;
    serve(mount, req, res, url);
  };
}

/** Serves `req` here: the session from this node's manager, then the application. */
function serve(mount: Mount, req: IncomingMessage, res: ServerResponse, url: string): void {
  const r = req as AnyRequest & { contextPath?: string };
  const path = requestPath(url);
  r.originalUrl = url;
  r.contextPath = mount.contextPath;
  if (mount.contextPath !== '/') {
    const rest = url.slice(mount.contextPath.length);
    req.url = rest === '' || rest[0] === '?' ? `/${rest}` : rest;
  }
  const rs = new RequestSession(mount.manager, mount.manager.config, req, res, path);
  r[kSession] = rs;
  if (!(req instanceof ClusterRequest)) decorate(req);
  if (!(res instanceof ClusterResponse)) {
    replicateBeforeEnd(res, rs);
    res.on('close', onClose);
  }
  if (rs.ready === undefined) {
    if (rs.busy) serializeBusy(res);
    else run(mount.app, req, res);
  } else
    rs.ready.then(() => {
      if (rs.abandoned) return;
      if (rs.busy) serializeBusy(res);
      else run(mount.app, req, res);
    });
}

function run(app: RequestListener, req: IncomingMessage, res: ServerResponse): void {
  let result: unknown;
  try {
    result = app(req, res);
  } catch (err) {
    fail(res, err);
    return;
  }
  if (result instanceof Promise) result.catch((err: unknown) => fail(res, err));
}

/**
 * Wraps this response's end() so that the request's session changes are replicated first (and,
 * in synchronous mode, acknowledged by the others) — for responses that are not ClusterResponse.
 */
function replicateBeforeEnd(res: ServerResponse, rs: RequestSession): void {
  const end = res.end;
  res.end = function patchedEnd(this: ServerResponse, ...args: unknown[]) {
    const p = rs.finish();
    if (p === undefined) {
      res.end = end;
      return end.apply(this, args as Parameters<typeof end>);
    }
    // Like a response that already ended: a second end() while the first waits changes nothing.
    res.end = endedAlready;
    p.then(() => {
      res.end = end;
      end.apply(this, args as Parameters<typeof end>);
    });
    return this;
  } as typeof res.end;
}

function endedAlready(this: ServerResponse): ServerResponse {
  return this;
}

function getSession(rs: RequestSession | undefined, create: boolean): SessionHandle | undefined {
  if (rs === undefined) return undefined;
  if (rs.existing === undefined) {
    // Tomcat's getSession() creates one, except where it cannot: a read-only path, after destroy().
    if (!create || rs.readOnly || rs.destroyed) return undefined;
    rs.forWrite('getSession()');
  }
  return rs.handle();
}

/**
 * `session`, `sessionID`, `getSession(create)` and `jvmRoute` for a plain IncomingMessage
 * (middleware path): shared accessors that find the request's RequestSession under kSession, so
 * decorating a request allocates no functions.
 */
const DECORATION: PropertyDescriptorMap = {
  session: {
    configurable: true,
    enumerable: true,
    get(this: AnyRequest) {
      return this[kSession]?.handle();
    },
    set(this: AnyRequest, v: unknown) {
      if (v === null || v === undefined) this[kSession]?.destroy();
      else throw new TypeError('req.session can only be set to null (to destroy the session)');
    },
  },
  sessionID: {
    configurable: true,
    enumerable: true,
    get(this: AnyRequest) {
      return this[kSession]?.sessionId();
    },
  },
  getSession: {
    configurable: true,
    value(this: AnyRequest, create = true) {
      return getSession(this[kSession], create);
    },
  },
  jvmRoute: {
    configurable: true,
    get(this: AnyRequest) {
      return this[kSession]?.manager.route;
    },
  },
};

function decorate(req: IncomingMessage): void {
  Object.defineProperties(req, DECORATION);
}

Object.defineProperties(ClusterRequest.prototype, DECORATION);

function fail(res: ServerResponse, err: unknown): void {
  if (!res.headersSent && (err as { code?: string })?.code === ErrorCode.TOO_MANY_SESSIONS) {
    res.statusCode = 503;
    res.setHeader('Retry-After', '1');
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.end('too many active sessions\n');
    return;
  }
  if (!res.headersSent) {
    res.statusCode = 500;
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.end('internal server error\n');
  } else res.destroy(err as Error);
  process.emitWarning(`clowder: application error: ${(err as Error)?.stack ?? String(err)}`);
}
