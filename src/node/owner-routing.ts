/**
 * Which node a session's requests are forwarded to (http/owner-forward.ts): the member that owns
 * it by this node's copy, else the member the cookie's route names; only a live member that
 * serves the context and advertises an HTTP port, reached at its cluster receiver's host.
 */
import type { ForwardTarget } from '../http/owner-forward.js';
import { httpPortOf, type ReplicationHub } from '../session/replication-hub.js';
import type { SessionManager } from '../session/session-manager.js';

export type ForwardMode = 'auto' | 'always' | 'off';

export function ownerRouting(
  mode: ForwardMode,
  hub: ReplicationHub,
): (manager: SessionManager, id: string, route: string) => ForwardTarget | undefined {
  return (manager, id, route) => {
    const config = manager.config;
    if (mode === 'auto' && config.manager !== 'backup') return undefined;
    const held = manager.sessions.get(id);
    let ownerId: string | undefined;
    if (held !== undefined) {
      // This node's copy knows the owner; its own sessions (and ownerless ones) are served here.
      if (held.ownerId === manager.localId || held.ownerId === '') return undefined;
      ownerId = held.ownerId;
    } else if (route === '' || route === manager.route) return undefined;
    for (const m of hub.membersFor(config.name)) {
      if (ownerId !== undefined ? m.id !== ownerId : m.name !== route) continue;
      const port = httpPortOf(m);
      return port === undefined ? undefined : { name: m.name, host: m.host, port };
    }
    return undefined;
  };
}
