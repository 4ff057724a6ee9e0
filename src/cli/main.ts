#!/usr/bin/env node
/**
 * The `clowder` command.
 *   clowder demo                  a local 3-node cluster demo on loopback
 *   clowder channel [options]     run one channel member in the foreground
 */
import { parseArgs } from 'node:util';
import type { ChannelConfigInput } from '../config/channel-config.js';
import { ClusterError } from '../core/errors.js';
import { runChannelNode } from './channel-node.js';
import { runDemo } from './demo.js';

const USAGE = `usage:
  clowder demo
      Runs a local 3-node cluster on 127.0.0.1 and walks through membership, round trips,
      a SIGKILLed node, a restart and a graceful stop.
  clowder channel [options]
      Runs one channel member and prints membership events and message round trips.
      --name NAME              node name (jvmRoute)                  env CLOWDER_NAME
      --host ADDRESS           receiver address (default 127.0.0.1)  env CLOWDER_HOST
      --cluster-port PORT      receiver port (default 4000, autoBind 100) env CLOWDER_CLUSTER_PORT
      --membership KIND        multicast (default) or static         env CLOWDER_MEMBERSHIP
      --members H:P,H:P,...    static peers (may include this node)  env CLOWDER_MEMBERS
      --domain NAME            cluster partition                     env CLOWDER_DOMAIN
      --cluster-key-env VAR    read the shared cluster key from env VAR (default CLOWDER_CLUSTER_KEY)
      --ping-every MS          ping every member every MS ms and print the round trip
      --json                   one JSON object per line
`;

function channelConfig(values: Record<string, string | boolean | undefined>): ChannelConfigInput {
  const env = process.env;
  const pick = (flag: string, envName: string) => (values[flag] as string | undefined) ?? env[envName];
  const config: Record<string, unknown> = {};
  const name = pick('name', 'CLOWDER_NAME');
  if (name !== undefined) config.name = name;
  const domain = pick('domain', 'CLOWDER_DOMAIN');
  if (domain !== undefined) config.domain = domain;
  const receiver: Record<string, unknown> = {};
  const host = pick('host', 'CLOWDER_HOST');
  if (host !== undefined) receiver.address = host;
  const port = pick('cluster-port', 'CLOWDER_CLUSTER_PORT');
  if (port !== undefined) {
    if (!/^\d+$/.test(port))
      throw new ClusterError(
        'ERR_CLOWDER_CONFIG',
        `invalid option: --cluster-port must be a port number (got "${port}")`,
      );
    receiver.port = Number(port);
  }
  config.receiver = receiver;
  const kind = pick('membership', 'CLOWDER_MEMBERSHIP') ?? 'multicast';
  const members = pick('members', 'CLOWDER_MEMBERS');
  if (kind === 'static') {
    config.membership = {
      type: 'static',
      members: (members ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    };
  } else if (kind === 'multicast') {
    if (members !== undefined)
      throw new ClusterError('ERR_CLOWDER_CONFIG', 'invalid option: --members needs --membership static');
    config.membership = { type: 'multicast' };
  } else {
    throw new ClusterError(
      'ERR_CLOWDER_CONFIG',
      `invalid option: --membership must be "multicast" or "static" (got "${kind}")`,
    );
  }
  const keyVar = (values['cluster-key-env'] as string | undefined) ?? 'CLOWDER_CLUSTER_KEY';
  if (env[keyVar] !== undefined) config.clusterKey = env[keyVar];
  return config as ChannelConfigInput;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'demo') return runDemo();
  if (command === 'channel') {
    const { values } = parseArgs({
      args: rest,
      options: {
        name: { type: 'string' },
        host: { type: 'string' },
        'cluster-port': { type: 'string' },
        membership: { type: 'string' },
        members: { type: 'string' },
        domain: { type: 'string' },
        'cluster-key-env': { type: 'string' },
        'ping-every': { type: 'string' },
        json: { type: 'boolean' },
      },
      strict: true,
    });
    const ping = Number(values['ping-every'] ?? 0);
    return runChannelNode({
      config: channelConfig(values),
      pingEveryMs: Number.isFinite(ping) ? ping : 0,
      json: values.json === true,
    });
  }
  process.stdout.write(USAGE);
  if (command !== undefined && command !== 'help' && command !== '--help') process.exitCode = 2;
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`clowder: ${err.message}\n`);
  process.exitCode = err instanceof ClusterError ? 2 : 1;
});
