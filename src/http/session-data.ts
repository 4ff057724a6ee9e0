/**
 * The session object of the Fastify and Koa adapters: its properties are the session's
 * attributes (read, assign, `delete`, `Object.keys`, spread, JSON), next to the API names of the
 * framework's own session module (reserved). Reading reads this node's copy and creates nothing;
 * the first write creates the session. Values must be what clowder replicates (plain data: an
 * unencodable value throws at once, naming the attribute).
 */
import type { SessionBinding } from './session-binding.js';

/** The object behind the proxy: the binding, the framework's request or context, and the proxy itself. */
export class DataTarget<C = unknown> {
  proxy: object | undefined;
  /** save() was called in this request. */
  saved = false;
  constructor(
    readonly binding: SessionBinding,
    readonly context: C,
  ) {}
}

/** How the framework's API reads a reserved name (a method bound to the target, or a value). */
export type Reserved<C = unknown> = ReadonlyMap<string, (t: DataTarget<C>) => unknown>;
/** Reserved names that may be assigned (e.g. Koa's `maxAge`). */
export type ReservedSetters<C = unknown> = ReadonlyMap<string, (t: DataTarget<C>, value: unknown) => void>;

/** Creates the proxy: `reserved` names are the API, every other string key is an attribute. */
export function createSessionData<T extends object, C>(
  binding: SessionBinding,
  context: C,
  reserved: Reserved<C>,
  setters: ReservedSetters<C>,
  api: string,
): T {
  const target = new DataTarget<C>(binding, context);
  const handler: ProxyHandler<DataTarget<C>> = {
    get(t, prop) {
      if (typeof prop === 'symbol') return undefined;
      const r = reserved.get(prop);
      if (r !== undefined) return r(t);
      return t.binding.session?.getAttribute(prop);
    },
    set(t, prop, value) {
      if (typeof prop === 'symbol') throw new TypeError(`${api}: symbol keys cannot be session attributes`);
      const setter = setters.get(prop);
      if (setter !== undefined) {
        setter(t, value);
        return true;
      }
      if (reserved.has(prop)) throw new TypeError(`${api}.${prop} is reserved and cannot be assigned`);
      t.binding.create().setAttribute(prop, value);
      return true;
    },
    deleteProperty(t, prop) {
      if (typeof prop === 'string' && !reserved.has(prop)) t.binding.session?.removeAttribute(prop);
      return true;
    },
    has(t, prop) {
      if (typeof prop === 'symbol') return false;
      return reserved.has(prop) || (t.binding.session?.hasAttribute(prop) ?? false);
    },
    ownKeys(t) {
      const s = t.binding.session;
      return s?.valid ? s.attributeNames() : [];
    },
    getOwnPropertyDescriptor(t, prop) {
      if (typeof prop === 'symbol' || reserved.has(prop)) return undefined;
      const s = t.binding.session;
      if (s === undefined || !s.valid || !s.hasAttribute(prop)) return undefined;
      return { value: s.getAttribute(prop), writable: true, enumerable: true, configurable: true };
    },
    defineProperty() {
      return false;
    },
  };
  const proxy = new Proxy(target, handler);
  target.proxy = proxy;
  return proxy as unknown as T;
}

/** The session's attributes as a plain object (its JSON). */
export function attributesOf(binding: SessionBinding): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const s = binding.session;
  if (s === undefined || !s.valid) return out;
  for (const name of s.attributeNames()) out[name] = s.getAttribute(name);
  return out;
}

/** Runs `fn` and settles a Node-style callback, or returns a promise without one. */
export function settle(fn: () => Promise<void> | undefined, cb?: (err?: Error | null) => void): Promise<void> {
  let p: Promise<void>;
  try {
    p = fn() ?? Promise.resolve();
  } catch (err) {
    p = Promise.reject(err);
  }
  if (cb === undefined) return p;
  p.then(
    () => cb(null),
    (err: Error) => cb(err),
  );
  return Promise.resolve();
}
