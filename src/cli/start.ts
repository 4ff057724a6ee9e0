/** `clowder start`: one clowder node in the foreground; SIGTERM/SIGINT stop it gracefully. */

import { createLogger } from '../core/logger.js';
import type { ClusterNodeOptions } from '../node/cluster-node.js';
import { createClusterNode } from '../node/cluster-node.js';
import { type Flags, nodeConfigFrom, switchOn } from './options.js';

export async function runStart(flags: Flags): Promise<void> {
  const config = await nodeConfigFrom(flags);
  const json = switchOn(flags, 'json', 'CLOWDER_JSON');
  const node = createClusterNode(config as unknown as ClusterNodeOptions, { logger: createLogger() });
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= node.stop();
    return stopping;
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
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
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await stop();
}
