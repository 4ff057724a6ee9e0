/**
 * `clowder start`: one clowder node in the foreground; SIGTERM/SIGINT stop it gracefully (drain
 * first, see ClusterNode.stop); a second signal skips the rest of the drain.
 */

import { createLogger } from '../core/logger.js';
import type { ClusterNodeOptions } from '../node/cluster-node.js';
import { createClusterNode } from '../node/cluster-node.js';
import { type Flags, nodeConfigFrom, switchOn } from './options.js';

export async function runStart(flags: Flags): Promise<void> {
  const config = await nodeConfigFrom(flags);
  const json = switchOn(flags, 'json', 'CLOWDER_JSON');
  const node = createClusterNode(config as unknown as ClusterNodeOptions, { logger: createLogger() });
  // First SIGTERM/SIGINT: graceful stop with the drain (http.drainMs); a second one skips what is
  // left of the drain (the rest of the stop stays graceful); a third ends the process at once.
  let stopping: Promise<void> | undefined;
  let signals = 0;
  let stopped!: () => void;
  const signalled = new Promise<void>((resolve) => {
    stopped = resolve;
  });
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      stopping = node.stop();
      stopped();
    } else if (signals === 2) {
      void node.stop({ drainMs: 0 });
    } else {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      process.kill(process.pid, signal);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await node.start();
  } catch (err) {
    if (stopping === undefined) throw err;
    // Stopped by a signal before it was ready (e.g. during the state transfer): a clean exit.
    await stopping;
    process.stderr.write(`clowder node ${node.name} stopped before it was ready\n`);
    return;
  }
  const { host, port } = node.address;
  const ready = {
    node: node.name,
    http: `http://${host}:${port}`,
    cluster: `${node.channel.local.host}:${node.channel.local.port}`,
  };
  process.stdout.write(
    `${json ? JSON.stringify({ event: 'ready', ...ready }) : `clowder node ${ready.node} ready: ${ready.http} (cluster ${ready.cluster})`}\n`,
  );
  await signalled;
  await stopping;
}
