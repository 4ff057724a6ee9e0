/**
 * `clowder/koa`: Koa middleware giving `ctx.session` with koa-session's API (`isNew`, `maxAge`,
 * `populated`, `length`, `save()`, `regenerate()`, `manuallyCommit()`, `toJSON()`;
 * `ctx.session = null` destroys, `ctx.session = {…}` replaces the data), backed by clowder's
 * replicated sessions with the middleware's ownership and replication:
 *
 *   const sessions = createSessions({ channel: { … } });
 *   app.use(clowderKoa(sessions));
 *   await sessions.start();
 *
 * As koa-session: the session is made on first access of `ctx.session` and stored only when it
 * has data (or save()/regenerate()/maxAge asked for it); the commit runs after the downstream
 * middleware (autoCommit), even when it threw. Unlike koa-session the cookie is clowder's
 * `<id>.<route>` (128 random bits; the route for sticky balancers), not signed data.
 * Koa itself is not imported: only its types.
 */
import type { Context, Next } from 'koa';
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

/** `ctx.session`: koa-session's API; every other property is session data. */
export interface KoaSession {
  /** No session came with the request (a new one). */
  readonly isNew: boolean;
  /** Lifetime in ms (the cookie's Max-Age and the idle timeout on every node); 'session' = browser-session cookie. */
  maxAge: number | 'session';
  /** The session id (once the session exists). */
  readonly externalKey: string | undefined;
  /** The data has at least one key. */
  readonly populated: boolean;
  /** Number of data keys. */
  readonly length: number;
  /** Store it at commit even if empty. */
  save(callback?: Callback): Promise<void>;
  /** New id, same data (the old id ends everywhere). */
  regenerate(callback?: Callback): Promise<void>;
  /** Commits now (with `autoCommit: false`). */
  manuallyCommit(): Promise<void>;
  toJSON(): Record<string, unknown>;
  [key: string]: unknown;
}

declare module 'koa' {
  interface ExtendableContext {
    /** The clowder session (null after `ctx.session = null`). */
    get session(): KoaSession | null;
    /** null destroys the session; an object replaces its data (same id). */
    set session(value: KoaSession | Record<string, unknown> | null);
  }
}

export interface ClowderKoaOptions {
  /** Cookie name; default the manager's `cookieName`. */
  key?: string;
  /** Lifetime of new sessions in ms; 'session' or unset: a browser-session cookie and the manager's maxInactiveInterval. */
  maxAge?: number | 'session';
  /** Commit after the downstream middleware (default true); false: call `ctx.session.manuallyCommit()`. */
  autoCommit?: boolean;
  /** Re-send the cookie on every response of a used session (default false). */
  rolling?: boolean;
}

interface KoaState {
  readonly ctx: Context;
  readonly binding: SessionBinding;
  /** `ctx.session = null`. */
  removed: boolean;
  data: KoaSession | undefined;
  committed: Promise<void> | undefined;
}
type Target = DataTarget<KoaState>;

/** The middleware: `app.use(clowderKoa(sessions, options))`. */
export function clowderKoa(
  sessions: SessionSource,
  options: ClowderKoaOptions = {},
): (ctx: Context, next: Next) => Promise<void> {
  if (sessions === undefined)
    throw new TypeError('clowder/koa: the sessions (createSessions() or its manager) are required');
  const manager = managerOf(sessions);
  const maxAge = options.maxAge === 'session' ? undefined : options.maxAge;
  if (maxAge !== undefined && !(Number.isFinite(maxAge) && maxAge > 0))
    throw new TypeError(
      `clowder/koa: maxAge must be a number of milliseconds > 0 or 'session' (got ${String(maxAge)})`,
    );
  const cookie: BindingCookieOptions = { cookieName: options.key, maxAge, rolling: options.rolling === true };
  const autoCommit = options.autoCommit !== false;

  return async function clowderSession(ctx: Context, next: Next): Promise<void> {
    if (!manager.ready) {
      ctx.status = 503;
      ctx.set('Retry-After', '1');
      ctx.body = 'starting: receiving sessions from the cluster\n';
      return;
    }
    const b = new SessionBinding(manager, ctx.req, cookie);
    const ready = b.ready;
    if (ready !== undefined) {
      // Taking the session over from its owner: a client that goes away meanwhile ends its claim.
      const onClose = () => b.finish();
      ctx.res.once('close', onClose);
      await ready;
      ctx.res.off('close', onClose);
      if (b.abandoned) return;
    }
    if (b.busy) {
      // sessions.serialize: waited too long for the session's turn (or too many waited).
      ctx.status = 503;
      ctx.set('Retry-After', '1');
      ctx.body = 'busy: other requests of this session are still running (sessions.serialize); retry\n';
      return;
    }
    const state: KoaState = { ctx, binding: b, removed: false, data: undefined, committed: undefined };
    (ctx as StatefulContext)[kState] = state;
    extend(Object.getPrototypeOf(ctx) as object);
    try {
      await next();
    } finally {
      if (autoCommit) await commit(state, b);
      else if (state.committed === undefined) b.finish(); // never committed: the request still ends for its session
    }
  };
}

export default clowderKoa;

const kState = Symbol('clowder.koa.state');
type StatefulContext = Context & { [kState]?: KoaState };
/** Koa context prototypes (each app's `app.context`) given the `session` accessor. */
const extended = new WeakSet<object>();

/**
 * Defines `ctx.session` once on the app's context prototype (as koa-session extends
 * `app.context`), not per request: it reads the request's state.
 */
function extend(proto: object): void {
  if (extended.has(proto)) return;
  extended.add(proto);
  Object.defineProperty(proto, 'session', {
    configurable: true,
    enumerable: true,
    get(this: StatefulContext): KoaSession | null | undefined {
      const state = this[kState];
      if (state === undefined) return undefined; // a request this middleware did not see
      if (state.removed) return null;
      state.data ??= createSessionData<KoaSession, KoaState>(state.binding, state, RESERVED, SETTERS, 'ctx.session');
      return state.data;
    },
    set(this: StatefulContext, value: unknown) {
      const state = this[kState];
      if (state === undefined)
        throw new Error('ctx.session: the clowder session middleware did not run for this request');
      const b = state.binding;
      if (value === null || value === undefined) {
        state.removed = true;
        b.destroy(true);
        return;
      }
      if (typeof value !== 'object') throw new TypeError('ctx.session can only be set to an object or null');
      // Replace the data, keep the id (koa-session's semantics).
      const s = b.create();
      state.removed = false;
      const next = value as Record<string, unknown>;
      for (const name of s.attributeNames()) if (!Object.hasOwn(next, name)) s.removeAttribute(name);
      for (const name of Object.keys(next)) if (!RESERVED.has(name)) s.setAttribute(name, next[name]);
    },
  });
}

/** Replicates and sets the cookie (once). */
function commit(state: KoaState, b: SessionBinding): Promise<void> {
  if (state.committed !== undefined) return state.committed;
  const sent = b.finish();
  const line = b.setCookieHeader();
  const ctx = state.ctx;
  if (line !== undefined && !ctx.headerSent) ctx.append('Set-Cookie', line);
  state.committed = sent ?? Promise.resolve();
  return state.committed;
}

const methods: Record<string, (this: Target, ...args: never[]) => unknown> = {
  save(this: Target, cb?: Callback) {
    return settle(() => {
      this.binding.create();
      return undefined;
    }, cb);
  },
  regenerate(this: Target, cb?: Callback) {
    return settle(() => {
      this.binding.regenerate();
      return undefined;
    }, cb);
  },
  manuallyCommit(this: Target) {
    return commit(this.context, this.binding);
  },
  toJSON(this: Target) {
    return attributesOf(this.binding);
  },
  inspect(this: Target) {
    return attributesOf(this.binding);
  },
};

const RESERVED: Reserved<KoaState> = new Map<string, (t: Target) => unknown>([
  ...Object.entries(methods).map(([name, m]) => [name, (t: Target) => m.bind(t)] as const),
  ['isNew', (t) => !t.binding.loaded],
  ['maxAge', (t) => maxAgeOf(t.binding)],
  ['externalKey', (t) => t.binding.session?.id],
  ['populated', (t) => (t.binding.session?.attributeNames().length ?? 0) > 0],
  ['length', (t) => t.binding.session?.attributeNames().length ?? 0],
]);

const SETTERS: ReservedSetters<KoaState> = new Map([
  [
    'maxAge',
    (t: Target, value: unknown) => {
      if (value === 'session') t.binding.setMaxAge(null);
      else if (typeof value === 'number') t.binding.setMaxAge(value);
      else throw new TypeError("ctx.session.maxAge must be a number of milliseconds or 'session'");
    },
  ],
]);

function maxAgeOf(b: SessionBinding): number | 'session' {
  return b.maxAgeMs ?? 'session';
}
