/**
 * `req.session`: the session as a Node developer knows it from express-session (property access
 * and `delete`, `id`, `regenerate`, `destroy`, `save`, `reload`, `touch`, `cookie`), plus the
 * Servlet API for people coming from Tomcat (`getAttribute`, `setAttribute`, `removeAttribute`,
 * `invalidate`, …). Properties are the session's attributes: reading one records that the request
 * may mutate it in place, assigning one checks at once that it can be replicated.
 */
import { inspect } from 'node:util';
import { COOKIE_ATTRIBUTE } from '../session/cookie-meta.js';
import type { Session } from '../session/session.js';
import type { SessionCookie } from './session-cookie.js';

export type { SessionCookie } from './session-cookie.js';

/** What a handle needs from the request it belongs to. */
export interface HandleHost {
  /** The session: undefined before the request wrote to it, and after destroy(). */
  readonly session: Session | undefined;
  /** destroy() was called. */
  readonly destroyed: boolean;
  /** `req.sessionID`: the session's id, or the id it will get. */
  sessionId(): string;
  /** The session for a change of attribute `name` (created if there is none yet); throws in a read-only request. */
  forWrite(name: string): Session;
  regenerate(keep: boolean): void;
  destroy(): void;
  save(): Promise<void>;
  touch(): void;
  /** The route (jvmRoute) the client's cookie named, when it differs from this node's. */
  readonly originalRoute: string | undefined;
  readonly cookie: SessionCookie;
  /** Throws when the request may only read the session (sessions.readOnlyFilter); `what` is named. */
  writable(what: string): void;
  /** The idle timeout a new session gets (seconds). */
  readonly maxInactiveInterval: number;
}

/** A Node-style callback, called on a later tick. */
export type Callback = (err?: Error | null) => void;

/** express-session's regenerate has no options; clowder's takes `{ keep: true }` (Tomcat's changeSessionId). */
export interface RegenerateOptions {
  /** Keep the data and the cookie settings, change only the id. Default false: a new, empty session. */
  keep?: boolean;
}

/** What the proxy answers with its target (for util.inspect, which calls the target's method on the proxy). */
const kBase = Symbol('clowder.handleBase');

/** Methods and read-only properties; every other property name is an attribute. */
class HandleBase {
  /** The proxy around this object (what the application holds). */
  proxy: object | undefined;
  constructor(readonly host: HandleHost) {}

  /**
   * `console.log(req.session)`: the data, as express-session's Session shows it (util.inspect
   * looks at a proxy's target, so this lives here).
   */
  [inspect.custom](_depth: number, options: object): string {
    // util.inspect finds this on the proxy's target but calls it on the proxy.
    const self = (this as unknown as { [kBase]?: HandleBase })[kBase] ?? this;
    const data = methods.toJSON!.call(self) as Record<string, unknown>;
    data.cookie = self.host.cookie;
    return `Session ${inspect(data, options)}`;
  }
}

const methods: Record<string, (this: HandleBase, ...args: never[]) => unknown> = {
  regenerate(this: HandleBase, opts?: RegenerateOptions | Callback, cb?: Callback) {
    if (typeof opts === 'function') return settle(() => this.host.regenerate(false), opts);
    return settle(() => this.host.regenerate(opts?.keep === true), cb);
  },
  changeId(this: HandleBase, cb?: Callback) {
    return settle(() => this.host.regenerate(true), cb);
  },
  destroy(this: HandleBase, cb?: Callback) {
    return settle(() => this.host.destroy(), cb);
  },
  save(this: HandleBase, cb?: Callback) {
    let p: Promise<void>;
    try {
      p = this.host.save();
    } catch (err) {
      p = Promise.reject(err);
    }
    if (cb === undefined) return p;
    p.then(
      () => cb(null),
      (err: Error) => cb(err),
    );
    return p.catch(() => {});
  },
  reload(this: HandleBase, cb?: Callback) {
    // The node's session object is always current: nothing to reload.
    return settle(() => {
      if (this.host.destroyed) throw new Error('failed to load session');
    }, cb);
  },
  touch(this: HandleBase) {
    this.host.touch();
    return proxyOf(this);
  },
  resetMaxAge(this: HandleBase) {
    this.host.touch();
    return proxyOf(this);
  },
  getAttribute(this: HandleBase, name: string) {
    return name === COOKIE_ATTRIBUTE ? undefined : live(this)?.getAttribute(name);
  },
  setAttribute(this: HandleBase, name: string, value: unknown) {
    set(this, name, value);
  },
  removeAttribute(this: HandleBase, name: string) {
    remove(this, name);
  },
  getAttributeNames(this: HandleBase) {
    return names(this);
  },
  invalidate(this: HandleBase) {
    this.host.destroy();
  },
  getId(this: HandleBase) {
    live(this);
    return this.host.sessionId();
  },
  getCreationTime(this: HandleBase) {
    return live(this)?.creationTime ?? Date.now();
  },
  getLastAccessedTime(this: HandleBase) {
    return live(this)?.lastAccessedTime ?? Date.now();
  },
  getMaxInactiveInterval(this: HandleBase) {
    return live(this)?.maxInactiveInterval ?? this.host.maxInactiveInterval;
  },
  setMaxInactiveInterval(this: HandleBase, seconds: number) {
    this.host.forWrite('maxInactiveInterval').setMaxInactiveInterval(seconds);
  },
  isNew(this: HandleBase) {
    return live(this)?.isNew ?? true;
  },
  toJSON(this: HandleBase) {
    const out: Record<string, unknown> = { cookie: this.host.cookie.toJSON() };
    const s = live(this);
    if (s !== undefined) for (const name of names(this)) out[name] = s.getAttribute(name);
    return out;
  },
};

const getters: Record<string, (h: HandleBase) => unknown> = {
  id: (h) => {
    live(h);
    return h.host.sessionId();
  },
  cookie: (h) => h.host.cookie,
  originalRoute: (h) => h.host.originalRoute,
  creationTime: (h) => methods.getCreationTime!.call(h),
  lastAccessedTime: (h) => methods.getLastAccessedTime!.call(h),
  maxInactiveInterval: (h) => methods.getMaxInactiveInterval!.call(h),
};

/**
 * Every reserved name and how to read it, in a Map: a plain-object lookup would also find
 * Object.prototype's members (`constructor`, `__proto__`), which are attribute names here. The
 * reserved attribute that keeps the cookie settings reads as nothing.
 */
const RESERVED = new Map<string, (h: HandleBase) => unknown>([
  ...Object.entries(methods).map(([name, m]) => [name, (h: HandleBase) => m.bind(h)] as const),
  ...Object.entries(getters),
  [COOKIE_ATTRIBUTE, () => undefined],
]);

/** The session (undefined when the request has not written one yet); throws after destroy(). */
function live(h: HandleBase): Session | undefined {
  const s = h.host.session;
  if (s === undefined) {
    if (h.host.destroyed) throw new Error('this session was destroyed');
    return undefined;
  }
  if (!s.valid) throw new Error('this session was destroyed');
  return s;
}

/** Sets attribute `name` (creating the session if needed); `undefined` removes it. */
function set(h: HandleBase, name: string, value: unknown): void {
  if (name === COOKIE_ATTRIBUTE) throw new TypeError(`req.session.${name} is reserved and cannot be assigned`);
  if (value === undefined) remove(h, name);
  else h.host.forWrite(name).setAttribute(name, value);
}

/** Removes attribute `name`; a session that does not exist (or lacks it) is left alone. */
function remove(h: HandleBase, name: string): void {
  const s = live(h);
  if (s === undefined || name === COOKIE_ATTRIBUTE || !s.hasAttribute(name)) return;
  h.host.forWrite(name).removeAttribute(name);
}

/** The application's attribute names (not the reserved one). */
function names(h: HandleBase): string[] {
  const s = live(h);
  if (s === undefined) return [];
  const all = s.attributeNames();
  return s.hasAttribute(COOKIE_ATTRIBUTE) ? all.filter((n) => n !== COOKIE_ATTRIBUTE) : all;
}

/**
 * Runs `fn`; a callback is called on a later tick, as express-session's are (after its store),
 * so code after the call runs first either way. Without a callback the promise settles likewise.
 */
function settle(fn: () => void, cb: Callback | undefined): Promise<void> {
  let error: Error | undefined;
  try {
    fn();
  } catch (err) {
    error = err as Error;
  }
  if (cb !== undefined) {
    process.nextTick(cb, error ?? null);
    return Promise.resolve();
  }
  return error === undefined ? Promise.resolve() : Promise.reject(error);
}

function proxyOf(h: HandleBase): object {
  return h.proxy!;
}

const handler: ProxyHandler<HandleBase> = {
  get(target, prop) {
    if (typeof prop === 'symbol')
      return prop === kBase ? target : prop === inspect.custom ? target[inspect.custom].bind(target) : undefined;
    const reserved = RESERVED.get(prop);
    if (reserved !== undefined) return reserved(target);
    return live(target)?.getAttribute(prop);
  },
  set(target, prop, value) {
    if (typeof prop === 'symbol' || RESERVED.has(prop)) {
      if (prop === 'maxInactiveInterval' && typeof value === 'number') {
        target.host.forWrite(prop).setMaxInactiveInterval(value);
        return true;
      }
      throw new TypeError(`req.session.${String(prop)} is reserved and cannot be assigned`);
    }
    set(target, prop, value);
    return true;
  },
  deleteProperty(target, prop) {
    if (typeof prop === 'string' && !RESERVED.has(prop)) remove(target, prop);
    return true;
  },
  has(target, prop) {
    if (typeof prop === 'symbol') return false;
    return (
      (RESERVED.has(prop) && prop !== COOKIE_ATTRIBUTE) ||
      (target.host.session?.valid === true && target.host.session.hasAttribute(prop))
    );
  },
  ownKeys(target) {
    return target.host.session?.valid ? names(target) : [];
  },
  getOwnPropertyDescriptor(target, prop) {
    if (typeof prop === 'symbol' || RESERVED.has(prop)) return undefined;
    const s = target.host.session;
    if (s === undefined || !s.valid || !s.hasAttribute(prop)) return undefined;
    return { value: s.getAttribute(prop), writable: true, enumerable: true, configurable: true };
  },
  defineProperty() {
    return false;
  },
};

/**
 * The methods and reserved properties of `req.session` (express-session's Session, plus the
 * Servlet API). The typed `req.session` is this and `Partial<SessionData>` (see types.ts).
 */
export interface SessionApi {
  /** = `req.sessionID`. */
  readonly id: string;
  readonly cookie: SessionCookie;
  readonly originalRoute: string | undefined;
  regenerate(cb?: Callback): Promise<void>;
  regenerate(options: RegenerateOptions, cb?: Callback): Promise<void>;
  /** A new id for the same data and cookie settings (Tomcat's changeSessionId); = regenerate({ keep: true }). */
  changeId(cb?: Callback): Promise<void>;
  resetMaxAge(): this;
  destroy(cb?: Callback): Promise<void>;
  save(cb?: Callback): Promise<void>;
  reload(cb?: Callback): Promise<void>;
  touch(): this;
  getAttribute(name: string): unknown;
  setAttribute(name: string, value: unknown): void;
  removeAttribute(name: string): void;
  getAttributeNames(): string[];
  invalidate(): void;
  getId(): string;
  getCreationTime(): number;
  getLastAccessedTime(): number;
  getMaxInactiveInterval(): number;
  setMaxInactiveInterval(seconds: number): void;
  isNew(): boolean;
  toJSON(): Record<string, unknown>;
}

/** The object a request sees as `req.session`, untyped: any other property is an attribute. */
export type SessionHandle = Record<string, unknown> & SessionApi;

/** Creates the `req.session` object for one request. */
export function createSessionHandle(host: HandleHost): SessionHandle {
  const base = new HandleBase(host);
  const proxy = new Proxy(base, handler);
  base.proxy = proxy;
  return proxy as unknown as SessionHandle;
}
