/**
 * What the framework adapters (express-session store, Fastify plugin, Koa middleware) take: a
 * session manager, or anything that carries one — the object `createSessions()` returns. Defined
 * here, in the http layer, so the adapters need nothing from the node layer above them.
 */
import type { SessionManager } from '../session/session-manager.js';

/** A session manager (SessionManager…), or an object with one (e.g. the `SessionCluster` of `createSessions()`). */
export type SessionSource = SessionManager | { readonly manager: SessionManager };

/** The manager of a {@link SessionSource}. */
export function managerOf(source: SessionSource): SessionManager {
  return 'manager' in source ? source.manager : source;
}

/** Callbacks waiting for a manager's 'ready', one listener per manager (not one per call). */
const waiting = new WeakMap<SessionManager, (() => void)[]>();

/** Calls `fn` once the manager may serve (its state transfer is done): at once, or on 'ready'. */
export function whenReady(manager: SessionManager, fn: () => void): void {
  if (manager.ready) {
    fn();
    return;
  }
  let list = waiting.get(manager);
  if (list === undefined) {
    const queued: (() => void)[] = [];
    list = queued;
    waiting.set(manager, queued);
    manager.once('ready', () => {
      waiting.delete(manager);
      for (const f of queued) f();
    });
  }
  list.push(fn);
}
