/**
 * `clowder/fastify`: a Fastify plugin giving `request.session` with @fastify/session's API
 * (`get`, `set`, `sessionId`, `cookie`, `regenerate`, `destroy`, `reload`, `save`, `touch`,
 * `isModified`, `isSaved`, `options`; properties are the data), backed by clowder's replicated
 * sessions with the middleware's ownership and replication:
 *
 *   const sessions = createSessions({ channel: { … } });
 *   await fastify.register(clowderSession, { sessions });
 *   await sessions.start();
 *
 * Differences from @fastify/session, by design: the cookie is clowder's `<id>.<route>` (128
 * random bits, the route for sticky balancers; no signature, no secret needed), and a session is
 * stored only once something is written to it (as `saveUninitialized: false`).
 * Fastify itself is not imported: only its types.
 */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { requestIsSecure } from './proxy-trust.js';
import { type BindingCookieOptions, SessionBinding } from './session-binding.js';
import {
  attributesOf,
  createSessionData,
  type DataTarget,
  type Reserved,
  type ReservedSetters,
  settle,
} from './session-data.js';
import { managerOf, type SessionSource } from './session-source.js';

type Callback = (err?: Error | null) => void;

/** `request.session.cookie`: the session cookie's settings. */
export interface FastifySessionCookie {
  readonly path: string;
  readonly httpOnly: true;
  readonly secure: boolean;
  /** undefined: no SameSite attribute is sent. */
  readonly sameSite: 'Lax' | 'Strict' | 'None' | undefined;
  /** The lifetime in ms, or null for a browser-session cookie. */
  readonly originalMaxAge: number | null;
  /** Ms left (from now), or null. */
  readonly maxAge: number | null;
  /** When it expires, or null. */
  readonly expires: Date | null;
}

/** `request.session`: @fastify/session's API; every other property is session data. */
export interface FastifySession {
  /** The id (created now if the request has no session yet). */
  readonly sessionId: string;
  /** The cookie value: `<id>.<route>`. */
  readonly encryptedSessionId: string;
  readonly cookie: FastifySessionCookie;
  get<T = unknown>(key: string): T | undefined;
  set(key: string, value: unknown): void;
  delete(key: string): void;
  /** New id (fixation defence); keeps only `keysToKeep` (none: an empty session). */
  regenerate(keysToKeep?: string[] | Callback, callback?: Callback): Promise<void>;
  /** Invalidates the session on every node; `request.session` becomes null. The browser keeps its cookie. */
  destroy(callback?: Callback): Promise<void>;
  /** Nothing to do: this node's copy is current (taken over from its owner before the handler ran). */
  reload(callback?: Callback): Promise<void>;
  /** Stores the session now (even empty) and replicates it. */
  save(callback?: Callback): Promise<void>;
  touch(): void;
  /** Whether this request changed the data. */
  isModified(): boolean;
  /** Whether save() was called in this request. */
  isSaved(): boolean;
  /** Per-request cookie options: `maxAge` (ms) also becomes the session's idle timeout. */
  options(opts: { maxAge?: number | null }): void;
  /** The data as a plain object. */
  toJSON(): Record<string, unknown>;
  [key: string]: unknown;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The clowder session (null after destroy()). */
    session: FastifySession | null;
  }
}

export interface ClowderFastifyOptions {
  /** The sessions: `createSessions()`'s result, or its manager. */
  sessions: SessionSource;
  /** Cookie name; default the manager's `cookieName`. */
  cookieName?: string;
  /** `cookie.maxAge` (ms): persistent cookies and the sessions' idle timeout. */
  cookie?: { maxAge?: number };
  /** Re-send the cookie on every response of an existing session (@fastify/session's default: true). */
  rolling?: boolean;
}

const kBinding = Symbol('clowder.fastify.binding');
/** The request's session object, made on first use of `request.session`; null after destroy(). */
const kData = Symbol('clowder.fastify.session');
type Bound = FastifyRequest & { [kBinding]?: SessionBinding; [kData]?: FastifySession | null };
type Target = DataTarget<Bound>;

/**
 * The plugin: `fastify.register(clowderSession, { sessions })`. Not encapsulated (every route of
 * the instance gets `request.session`), like @fastify/session.
 */
export async function clowderSession(fastify: FastifyInstance, options: ClowderFastifyOptions): Promise<void> {
  if (options?.sessions === undefined)
    throw new TypeError('clowder/fastify: options.sessions is required (createSessions() or its manager)');
  const manager = managerOf(options.sessions);
  const maxAge = options.cookie?.maxAge;
  if (maxAge !== undefined && !(Number.isFinite(maxAge) && maxAge > 0))
    throw new TypeError(`clowder/fastify: cookie.maxAge must be a number of milliseconds > 0 (got ${String(maxAge)})`);
  const cookie: BindingCookieOptions = { cookieName: options.cookieName, maxAge, rolling: options.rolling ?? true };

  fastify.decorateRequest('session', {
    getter(this: Bound): FastifySession | null {
      let data = this[kData];
      if (data === undefined) {
        const b = this[kBinding];
        if (b === undefined) return null; // before the plugin's hook (or while not ready)
        data = this[kData] = createSessionData<FastifySession, Bound>(b, this, RESERVED, SETTERS, 'request.session');
      }
      return data;
    },
    setter(this: Bound, value: FastifySession | null) {
      if (value !== null) throw new TypeError('request.session can only be set to null (destroy() does it)');
      this[kData] = null;
    },
  });
  fastify.addHook('onRequest', async (request: Bound, reply: FastifyReply) => {
    if (!manager.ready) {
      reply.code(503).header('retry-after', '1').type('text/plain; charset=utf-8');
      return reply.send('starting: receiving sessions from the cluster\n');
    }
    const b = new SessionBinding(manager, request.raw, cookie);
    request[kBinding] = b;
    if (b.busy) return busy(reply);
    const ready = b.ready;
    if (ready === undefined) return;
    // Taking the session over from its owner: a client that goes away meanwhile ends its claim.
    const onClose = () => b.finish();
    reply.raw.once('close', onClose);
    await ready;
    reply.raw.off('close', onClose);
    if (b.abandoned) reply.hijack();
    else if (b.busy) return busy(reply);
  });
  fastify.addHook('onSend', async (request: Bound, reply: FastifyReply, payload: unknown) => {
    const b = request[kBinding];
    if (b === undefined) return payload;
    const sent = b.finish();
    const line = b.setCookieHeader();
    if (line !== undefined) reply.header('set-cookie', line);
    if (sent !== undefined) await sent;
    return payload;
  });
  // Responses that skipped onSend (hijacked, aborted): the request still ends for its session.
  fastify.addHook('onResponse', async (request: Bound) => {
    request[kBinding]?.finish();
  });
}
/** sessions.serialize: the request waited too long for its session's turn (or too many waited). */
function busy(reply: FastifyReply): FastifyReply {
  reply.code(503).header('retry-after', '1').type('text/plain; charset=utf-8');
  return reply.send('busy: other requests of this session are still running (sessions.serialize); retry\n');
}

// What fastify-plugin does: the hooks and the decorator apply to the parent instance, not a child context.
Object.assign(clowderSession, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'clowder-session',
});

export default clowderSession;

// ---- request.session --------------------------------------------------------------------------

const methods: Record<string, (this: Target, ...args: never[]) => unknown> = {
  get(this: Target, key: string) {
    return this.binding.session?.getAttribute(key);
  },
  set(this: Target, key: string, value: unknown) {
    this.binding.create().setAttribute(key, value);
  },
  delete(this: Target, key: string) {
    this.binding.session?.removeAttribute(key);
  },
  regenerate(this: Target, keys?: string[] | Callback, cb?: Callback) {
    const keep = Array.isArray(keys) ? new Set(keys) : new Set<string>();
    const callback = typeof keys === 'function' ? keys : cb;
    return settle(() => {
      const b = this.binding;
      const s = b.session;
      if (s?.valid) for (const name of s.attributeNames()) if (!keep.has(name)) s.removeAttribute(name);
      b.regenerate();
      return undefined;
    }, callback);
  },
  destroy(this: Target, cb?: Callback) {
    return settle(() => {
      this.binding.destroy(false);
      this.context.session = null;
      return undefined;
    }, cb);
  },
  reload(this: Target, cb?: Callback) {
    return settle(() => undefined, cb);
  },
  save(this: Target, cb?: Callback) {
    return settle(() => {
      this.binding.create();
      this.saved = true;
      return this.binding.save();
    }, cb);
  },
  touch(this: Target) {
    const s = this.binding.session;
    if (s !== undefined) s.lastAccessedTime = Date.now();
  },
  isModified(this: Target) {
    const s = this.binding.session;
    if (s === undefined || !s.valid) return false;
    if (!s.announced) return true;
    s.detectInPlaceChanges();
    return s.dirty !== undefined || s.maxInactiveDirty;
  },
  isSaved(this: Target) {
    return this.saved;
  },
  options(this: Target, opts: { maxAge?: number | null }) {
    if (opts?.maxAge !== undefined) this.binding.setMaxAge(opts.maxAge);
  },
  toJSON(this: Target) {
    return attributesOf(this.binding);
  },
};

const RESERVED: Reserved<Bound> = new Map<string, (t: Target) => unknown>([
  ...Object.entries(methods).map(([name, m]) => [name, (t: Target) => m.bind(t)] as const),
  ['sessionId', (t) => t.binding.create().id],
  ['encryptedSessionId', (t) => `${t.binding.create().id}.${t.binding.manager.route}`],
  ['cookie', (t) => cookieOf(t.binding)],
]);
const SETTERS: ReservedSetters<Bound> = new Map();

function cookieOf(b: SessionBinding): FastifySessionCookie {
  const maxAge = b.maxAgeMs;
  const config = b.manager.config;
  const s = b.session;
  const expires = maxAge === null ? null : new Date((s?.lastAccessedTime ?? Date.now()) + maxAge);
  return {
    path: config.contextPath,
    httpOnly: true,
    secure: config.cookieSecure === 'auto' ? requestIsSecure(b.req, config.trustProxy) : config.cookieSecure,
    sameSite: config.cookieSameSite,
    originalMaxAge: maxAge,
    maxAge: expires === null ? null : Math.max(0, expires.getTime() - Date.now()),
    expires,
  };
}
