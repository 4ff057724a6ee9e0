/**
 * What the BackupManager twin tests share: one request as the HTTP layer makes it, an increment,
 * and the managers' counters.
 */
import type { BackupManager } from '../../src/session/backup-manager.js';
import type { Session } from '../../src/session/session.js';

/** One request on `m` for `id` as the HTTP layer makes it: find or fetch, start, acquire, `app`, complete. */
export async function request(m: BackupManager, id: string, app: (s: Session) => void): Promise<void> {
  let s = m.findSession(id);
  if (s === undefined) s = await m.fetchSession(id);
  if (s === undefined) throw new Error(`session ${id.slice(0, 8)} not found on ${m.route}`);
  m.requestStarted(s);
  try {
    const wait = m.acquire(s);
    if (wait !== undefined) await wait;
    app(s);
  } finally {
    await m.requestCompleted(s);
  }
}

/** The counter application: count + 1. */
export const increment = (s: Session): void => s.setAttribute('count', ((s.getAttribute('count') as number) ?? 0) + 1);

/** A manager's stats with its counters readable by name. */
export const stats = (m: BackupManager) => m.stats() as ReturnType<BackupManager['stats']> & Record<string, number>;

/** Counter `key` summed over the nodes' managers. */
export const sum = (nodes: readonly { manager: BackupManager }[], key: string): number =>
  nodes.reduce((a, n) => a + (stats(n.manager)[key] ?? 0), 0);
