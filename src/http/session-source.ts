/**
 * What the framework adapters (express-session store, Fastify plugin, Koa middleware) take: a
 * session manager, or anything that carries one — the object `createSessions()` returns. Defined
 * here, in the http layer, so the adapters need nothing from the node layer above them.
 */
import type { DeltaManager } from '../session/delta-manager.js';

/** A DeltaManager, or an object with one (e.g. the `SessionCluster` of `createSessions()`). */
export type SessionSource = DeltaManager | { readonly manager: DeltaManager };

/** The manager of a {@link SessionSource}. */
export function managerOf(source: SessionSource): DeltaManager {
  return 'manager' in source ? source.manager : source;
}

/** Calls `fn` once the manager may serve (its state transfer is done): at once, or on 'ready'. */
export function whenReady(manager: DeltaManager, fn: () => void): void {
  if (manager.ready) fn();
  else manager.once('ready', fn);
}
