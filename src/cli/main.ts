#!/usr/bin/env node
/**
 * The `clowder` command.
 *   clowder demo                  a local 3-node cluster demo on loopback
 *   clowder balancer [options]    a sticky development balancer in front of nodes
 *   clowder channel [options]     run one channel member in the foreground
 */
import { parseArgs } from 'node:util';
import type { ChannelConfigInput } from '../config/channel-config.js';
import { ClusterError, ConfigError } from '../core/errors.js';
import { runBalancer } from './balancer.js';
import { runChannelNode } from './channel-node.js';
import { runDemo } from './demo.js';
import { applyClusterFlags, CLUSTER_FLAGS, START_FLAGS, switchOn } from './options.js';
import { runStart } from './start.js';

const USAGE = `usage:
  clowder demo [--exit]
      A local 3-node cluster of the counter application on 127.0.0.1 (HTTP 8081-8083), with a
      failover walk-through; then it keeps running for you to try (Ctrl-C stops it; --exit: stop at once).
  clowder start [options]
      Runs one node: the cluster channel, a session manager per application, the HTTP server
      (opened only once the node holds the cluster's sessions). SIGTERM/SIGINT stop it gracefully.
      --config FILE            YAML or JSON node config                   env CLOWDER_CONFIG
      --app /PATH=MODULE       mount MODULE's default export at /PATH (repeatable) env CLOWDER_APPS
      --name NAME              node name (jvmRoute)                       env CLOWDER_NAME
      --host ADDRESS           HTTP and cluster address (default 127.0.0.1) env CLOWDER_HOST
      --port PORT              HTTP port (default 8080)                   env CLOWDER_PORT
      --cluster-host ADDRESS   cluster receiver address, if not --host    env CLOWDER_CLUSTER_HOST
      --cluster-port PORT      cluster receiver port (default 4000, autoBind 100) env CLOWDER_CLUSTER_PORT
      --membership KIND        multicast (default), static or dns         env CLOWDER_MEMBERSHIP
      --members H:P,H:P,...    static peers' cluster ports (may include this node) env CLOWDER_MEMBERS
      --dns-name NAME          dns: the members are the addresses NAME resolves to (A/AAAA, on the
                               cluster port; an SRV name _svc._tcp.… gives the ports), re-resolved
                               every 5 s; implies --membership dns     env CLOWDER_DNS_NAME
      --dns-server IP[:PORT]   DNS server to ask (repeatable; default: the system's) env CLOWDER_DNS_SERVERS (comma-separated)
      --send async|sync        replication mode (default async)           env CLOWDER_SEND
      --manager delta|backup   session manager: every node holds every session (delta, default),
                               or each session on its node and K others (backup) env CLOWDER_MANAGER
      --backups K              with --manager backup: copies besides the primary (default 1) env CLOWDER_BACKUPS
      --zone ZONE              this node's failure zone: backups prefer other zones  env CLOWDER_ZONE
      --placement-host NAME    the machine this node runs on (default: the OS host name) env CLOWDER_PLACEMENT_HOST
      --domain NAME            cluster partition                          env CLOWDER_DOMAIN
      --cluster-key-env VAR    read the shared cluster key from env VAR (default CLOWDER_CLUSTER_KEY);
                               KEY1,KEY2 during a rotation (the first sends, both are accepted)
      --key-file FILE          read the cluster key from FILE (mode 0600)  env CLOWDER_KEY_FILE
                               (default without a key: ~/.clowder/cluster.key, created on first start)
      --insecure               run without any cluster key (unauthenticated)  env CLOWDER_INSECURE=1
      --trust-proxy WHICH      proxies whose X-Forwarded-Proto is believed: false (default), true,
                               a hop count, or addresses/CIDRs (a,b/8,loopback) env CLOWDER_TRUST_PROXY
                               env CLOWDER_ADMIN_TOKEN: token (>= 32 chars) that opens /_clowder/* to
                               non-loopback clients (Authorization: Bearer); no flag, it is a secret
      --drain-ms MS            on SIGTERM: readiness 503 and keep serving (Connection: close) for MS
                               before no longer accepting (default 2000; 0 = none; a second
                               signal skips it)                            env CLOWDER_DRAIN_MS
      --forward MODE           a request whose session another node owns is proxied there: off
                               (default), auto (BackupManager apps), always  env CLOWDER_FORWARD
      --json                   machine-readable ready line                env CLOWDER_JSON=1
  clowder balancer --backend NAME=HOST:PORT [--backend ...] [options]
      A small sticky reverse proxy for development and the demo (production: HAProxy or nginx,
      see examples/): routes on the session cookie's route (the node's --name after the "."),
      round-robin for new clients, health checks, sends a dead node's requests to another node.
      --backend NAME=HOST:PORT a node (repeatable)            env CLOWDER_BALANCER_BACKENDS (comma-separated)
      --host ADDRESS           listen address (default 127.0.0.1) env CLOWDER_BALANCER_HOST
      --port PORT              listen port (default 8080)       env CLOWDER_BALANCER_PORT
      --cookie-name NAME       session cookie (default JSESSIONID) env CLOWDER_BALANCER_COOKIE_NAME
      --health-interval MS     health check interval (default 1000) env CLOWDER_BALANCER_HEALTH_INTERVAL
      --json                   machine-readable ready line
  clowder channel [options]
      Runs one bare channel member and prints membership events and message round trips
      (the cluster flags above, plus --ping-every MS and --json).
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'demo') return runDemo({ exit: rest.includes('--exit') });
  if (command === 'start') {
    const { values } = parseArgs({ args: rest, options: START_FLAGS, strict: true });
    return runStart(values);
  }
  if (command === 'balancer') {
    const { values } = parseArgs({
      args: rest,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        backend: { type: 'string', multiple: true },
        'cookie-name': { type: 'string' },
        'health-interval': { type: 'string' },
        json: { type: 'boolean' },
      },
      strict: true,
    });
    return runBalancer(values);
  }
  if (command === 'channel') {
    const { values } = parseArgs({
      args: rest,
      options: { ...CLUSTER_FLAGS, 'ping-every': { type: 'string' }, json: { type: 'boolean' } },
      strict: true,
    });
    const ping = Number(values['ping-every'] ?? 0);
    const config = applyClusterFlags({}, values) as ChannelConfigInput;
    return runChannelNode({
      config,
      pingEveryMs: Number.isFinite(ping) ? ping : 0,
      json: switchOn(values, 'json', 'CLOWDER_JSON'),
    });
  }
  process.stdout.write(USAGE);
  if (command !== undefined && command !== 'help' && command !== '--help') process.exitCode = 2;
}

main(process.argv.slice(2)).catch((err: Error) => {
  // An application's own error (e.g. it threw at import) is shown with its stack.
  const cause = err.cause instanceof Error ? `\n  caused by: ${err.cause.stack ?? err.cause.message}` : '';
  // One line per problem of a config (ConfigError lists them all), each readable alone.
  const message = err instanceof ConfigError ? err.message.replaceAll('\n', '\nclowder: ') : err.message;
  process.stderr.write(`clowder: ${message}${cause}\n`);
  const code = (err as { code?: string }).code ?? '';
  process.exitCode = err instanceof ClusterError || code.startsWith('ERR_PARSE_ARGS') ? 2 : 1;
});
