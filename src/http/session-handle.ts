/**
 * `req.session`: the session as a Node developer knows it from express-session (property access
 * and `delete`, `id`, `regenerate`, `destroy`, `save`, `reload`, `touch`, `cookie`), plus the
 * Servlet API for people coming from Tomcat (`getAttribute`, `setAttribute`, `removeAttribute`,
 * `invalidate`, …). Properties are the session's attributes: reading one records that the request
 * may mutate it in place, assigning one checks at once that it can be replicated.
 */
import type { Session } from '../session/session.js';

/** What a handle needs from the request it belongs to. */
export interface HandleHost {
  /** The session (undefined after destroy()). */
  readonly session: Session | undefined;
  regenerate(): void;
  destroy(): void;
  save(): Promise<void>;
  touch(): void;
  /** The route (jvmRoute) the client's cookie named, when it differs from this node's. */
  readonly originalRoute: string | undefined;
  readonly cookie: SessionCookie;
  /** Throws when the request may only read the session (sessions.readOnlyFilter); `what` is named. */
  writable(what: string): void;
}

/** The cookie settings of this session (express-session's `req.session.cookie`). */
export interface SessionCookie {
  path: string;
  httpOnly: true;
  secure: boolean;
  sameSite: 'Lax' | 'Strict' | 'None';
  /** Milliseconds: set to make the cookie persistent (Max-Age); null = a browser-session cookie. */
  maxAge: number | null;
}

type Callback = (err?: Error | null) => void;

/** Methods and read-only properties; every other property name is an attribute. */
class HandleBase {
  /** The proxy around this object (what the application holds). */
  proxy: object | undefined;
  constructor(readonly host: HandleHost) {}
}

const methods: Record<string, (this: HandleBase, ...args: never[]) => unknown> = {
  regenerate(this: HandleBase, cb?: Callback) {
    return settle(() => this.host.regenerate(), cb);
  },
  destroy(this: HandleBase, cb?: Callback) {
    return settle(() => this.host.destroy(), cb);
  },
  save(this: HandleBase, cb?: Callback) {
    const p = this.host.save();
    if (cb) p.then(() => cb(null), cb);
    return p;
  },
  reload(this: HandleBase, cb?: Callback) {
    // The node's session object is always current: nothing to reload.
    return settle(() => {}, cb);
  },
  touch(this: HandleBase) {
    this.host.touch();
    return proxyOf(this);
  },
  getAttribute(this: HandleBase, name: string) {
    return live(this).getAttribute(name);
  },
  setAttribute(this: HandleBase, name: string, value: unknown) {
    writable(this, name).setAttribute(name, value);
  },
  removeAttribute(this: HandleBase, name: string) {
    writable(this, name).removeAttribute(name);
  },
  getAttributeNames(this: HandleBase) {
    return live(this).attributeNames();
  },
  invalidate(this: HandleBase) {
    this.host.destroy();
  },
  getId(this: HandleBase) {
    return live(this).id;
  },
  getCreationTime(this: HandleBase) {
    return live(this).creationTime;
  },
  getLastAccessedTime(this: HandleBase) {
    return live(this).lastAccessedTime;
  },
  getMaxInactiveInterval(this: HandleBase) {
    return live(this).maxInactiveInterval;
  },
  setMaxInactiveInterval(this: HandleBase, seconds: number) {
    writable(this, 'maxInactiveInterval').setMaxInactiveInterval(seconds);
  },
  isNew(this: HandleBase) {
    return live(this).isNew;
  },
  toJSON(this: HandleBase) {
    const s = live(this);
    const out: Record<string, unknown> = {};
    for (const name of s.attributeNames()) out[name] = s.getAttribute(name);
    return out;
  },
};

const getters: Record<string, (h: HandleBase) => unknown> = {
  id: (h) => live(h).id,
  cookie: (h) => h.host.cookie,
  originalRoute: (h) => h.host.originalRoute,
  creationTime: (h) => live(h).creationTime,
  lastAccessedTime: (h) => live(h).lastAccessedTime,
  maxInactiveInterval: (h) => live(h).maxInactiveInterval,
};

/**
 * Every reserved name and how to read it, in a Map: a plain-object lookup would also find
 * Object.prototype's members (`constructor`, `__proto__`), which are attribute names here.
 */
const RESERVED = new Map<string, (h: HandleBase) => unknown>([
  ...Object.entries(methods).map(([name, m]) => [name, (h: HandleBase) => m.bind(h)] as const),
  ...Object.entries(getters),
]);

function live(h: HandleBase): Session {
  const s = h.host.session;
  if (s === undefined || !s.valid) throw new Error('this session was destroyed');
  return s;
}

/** The session, for a change of `name`; throws in a request that may only read it. */
function writable(h: HandleBase, name: string): Session {
  const s = live(h);
  h.host.writable(`cannot change session attribute ${JSON.stringify(name)}`);
  return s;
}

function settle(fn: () => void, cb: Callback | undefined): Promise<void> {
  try {
    fn();
  } catch (err) {
    if (cb) {
      cb(err as Error);
      return Promise.resolve();
    }
    return Promise.reject(err);
  }
  cb?.(null);
  return Promise.resolve();
}

function proxyOf(h: HandleBase): object {
  return h.proxy!;
}

const handler: ProxyHandler<HandleBase> = {
  get(target, prop) {
    if (typeof prop === 'symbol') return undefined;
    const reserved = RESERVED.get(prop);
    if (reserved !== undefined) return reserved(target);
    return live(target).getAttribute(prop);
  },
  set(target, prop, value) {
    if (typeof prop === 'symbol' || RESERVED.has(prop)) {
      if (prop === 'maxInactiveInterval' && typeof value === 'number') {
        writable(target, prop).setMaxInactiveInterval(value);
        return true;
      }
      throw new TypeError(`req.session.${String(prop)} is reserved and cannot be assigned`);
    }
    writable(target, prop).setAttribute(prop, value);
    return true;
  },
  deleteProperty(target, prop) {
    if (typeof prop === 'string' && !RESERVED.has(prop)) writable(target, prop).removeAttribute(prop);
    return true;
  },
  has(target, prop) {
    if (typeof prop === 'symbol') return false;
    return RESERVED.has(prop) || (target.host.session?.hasAttribute(prop) ?? false);
  },
  ownKeys(target) {
    return target.host.session?.valid ? target.host.session.attributeNames() : [];
  },
  getOwnPropertyDescriptor(target, prop) {
    if (typeof prop === 'symbol' || RESERVED.has(prop)) return undefined;
    const s = target.host.session;
    if (s === undefined || !s.hasAttribute(prop)) return undefined;
    return { value: s.getAttribute(prop), writable: true, enumerable: true, configurable: true };
  },
  defineProperty() {
    return false;
  },
};

/** The object a request sees as `req.session`. */
export type SessionHandle = Record<string, unknown> & {
  readonly id: string;
  readonly cookie: SessionCookie;
  readonly originalRoute: string | undefined;
  regenerate(cb?: Callback): Promise<void>;
  destroy(cb?: Callback): Promise<void>;
  save(cb?: Callback): Promise<void>;
  reload(cb?: Callback): Promise<void>;
  touch(): SessionHandle;
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
};

/** Creates the `req.session` object for one request. */
export function createSessionHandle(host: HandleHost): SessionHandle {
  const base = new HandleBase(host);
  const proxy = new Proxy(base, handler);
  base.proxy = proxy;
  return proxy as unknown as SessionHandle;
}
