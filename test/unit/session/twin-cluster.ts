// Session managers on the in-memory channel twin (test/helpers/memory-channel.ts): the real
// DeltaManager, ReplicationHub, codec and protocols, no sockets. A "request" here is what the
// HTTP layer does (docs/architecture.md, "The HTTP contract").
import type { SessionConfigInput } from '../../../src/config/session-config.js';
import { resolveSessionConfig } from '../../../src/config/session-config.js';
import { silentLogger } from '../../../src/core/logger.js';
import type { Counter } from '../../../src/session/counters.js';
import { createManager } from '../../../src/session/create-manager.js';
import type { DeltaManager } from '../../../src/session/delta-manager.js';
import { ReplicationHub } from '../../../src/session/replication-hub.js';
import type { Session } from '../../../src/session/session.js';
import { type MemoryChannel, MemoryNetwork } from '../../helpers/memory-channel.js';

export interface TwinNode {
  readonly name: string;
  readonly channel: MemoryChannel;
  readonly hub: ReplicationHub;
  readonly manager: DeltaManager;
}

export { MemoryNetwork };

/** Starts a node on `net` serving context "app" (the manager `input.manager` names): joins, then takes the sessions of the oldest member (or its share). */
export async function startNode(net: MemoryNetwork, name: string, input: SessionConfigInput = {}): Promise<TwinNode> {
  const channel = net.channel(name);
  const hub = new ReplicationHub(channel, silentLogger);
  const manager = createManager(resolveSessionConfig({ contextName: 'app', ...input }), hub, silentLogger);
  channel.start();
  await manager.start();
  return { name, channel, hub, manager };
}

/** Starts nodes one after the other (each sees the ones before it). */
export async function startNodes(
  net: MemoryNetwork,
  names: string[],
  input: SessionConfigInput = {},
): Promise<TwinNode[]> {
  const nodes: TwinNode[] = [];
  for (const name of names) nodes.push(await startNode(net, name, input));
  return nodes;
}

export async function stopAll(nodes: readonly TwinNode[]): Promise<void> {
  for (const n of nodes) {
    await n.manager.stop();
    n.channel.stop();
  }
}

/**
 * One request on `m` for session `id` (or a new session when undefined), as the HTTP layer makes
 * it: find or create, requestStarted, acquire (waited for), the application (`app`), then
 * requestCompleted. Returns the session; `sent` is what the response would wait for.
 */
export async function request(
  m: DeltaManager,
  id: string | undefined,
  app: (s: Session) => void,
): Promise<{ session: Session; sent: Promise<void> | undefined }> {
  let s = id === undefined ? undefined : m.findSession(id);
  if (s === undefined) {
    if (id !== undefined) throw new Error(`no session ${id.slice(0, 8)} on ${m.route}`);
    s = m.createSession();
  }
  m.requestStarted(s);
  const wait = m.acquire(s);
  if (wait !== undefined) await wait;
  app(s);
  return { session: s, sent: m.requestCompleted(s) };
}

/** A counter of `m`'s stats. */
export function stat(m: DeltaManager, key: Counter): number {
  return m.stats()[key];
}
