/**
 * Two library-mode instances (`createSessions()`) on an isolated multicast group, started and
 * seeing each other: the two "nodes" of the framework adapter tests.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createSessions,
  type SessionCluster,
  type SessionConfigInput,
  type SessionsOptions,
  silentLogger,
} from '../../../src/index.js';
import { throwFailures } from '../../helpers/http.js';
import { isolatedMulticast, waitFor } from '../../helpers/wait.js';

export interface Pair {
  x: SessionCluster;
  y: SessionCluster;
  stop(): Promise<void>;
}

/** Creates both instances; `beforeStart` may attach servers to them before they start. */
export async function startPair(
  sessions: SessionConfigInput = {},
  channel: SessionsOptions['channel'] = {},
): Promise<Pair> {
  const { port, domain } = isolatedMulticast();
  const options = (name: string): SessionsOptions => ({
    channel: {
      name,
      domain,
      receiver: { port: 0 },
      membership: { type: 'multicast', port, frequencyMs: 100, dropTimeMs: 1000 },
      ...channel,
    },
    sessions,
  });
  const x = createSessions(options('x'), { logger: silentLogger });
  const y = createSessions(options('y'), { logger: silentLogger });
  const stop = async () => {
    throwFailures(await Promise.allSettled([x.stop(), y.stop()]), 'cleaning up');
  };
  try {
    await Promise.all([x.start(), y.start()]);
    await waitFor(
      () => x.channel.members().length === 1 && y.channel.members().length === 1,
      'the two instances to see each other',
    );
  } catch (err) {
    await Promise.allSettled([x.stop(), y.stop()]); // the start's own error is the one to report
    throw err;
  }
  return { x, y, stop };
}

/** Listens on an ephemeral loopback port. */
export function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** Closes a server and its connections. */
export function close(server: Server | undefined): Promise<void> {
  if (server === undefined || !server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
