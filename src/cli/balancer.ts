/**
 * `clowder balancer`: runs the sticky development balancer in the foreground until SIGTERM/SIGINT
 * (a graceful stop). Flags over CLOWDER_BALANCER_* environment variables over defaults
 * (src/config/balancer-config.ts).
 */
import type { BalancerConfigInput } from '../config/balancer-config.js';
import { ConfigError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { Balancer } from './balancer-proxy.js';

export interface BalancerFlags {
  host?: string;
  port?: string;
  backend?: string[];
  'cookie-name'?: string;
  'health-interval'?: string;
  json?: boolean;
}

/** `route=host:port` (the route is the node's --name). */
export function parseBackend(spec: string): { route: string; host: string; port: number } {
  const m = /^([^=]+)=(.+):(\d+)$/.exec(spec.trim());
  if (!m)
    throw new ConfigError('balancer.backends', `entries of the form NAME=HOST:PORT, e.g. node-a=127.0.0.1:8081`, spec);
  return { route: m[1]!, host: m[2]!.replace(/^\[(.*)\]$/, '$1'), port: Number(m[3]) };
}

function numberFrom(value: string | undefined, key: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`balancer.${key}`, 'a number', value);
  return n;
}

/** The config from flags and the environment. */
export function balancerConfigFrom(flags: BalancerFlags, env: NodeJS.ProcessEnv = process.env): BalancerConfigInput {
  const backends = flags.backend ?? env.CLOWDER_BALANCER_BACKENDS?.split(',').filter((s) => s.trim() !== '') ?? [];
  const out: Record<string, unknown> = { backends: backends.map(parseBackend) };
  const host = flags.host ?? env.CLOWDER_BALANCER_HOST;
  if (host !== undefined) out.host = host;
  const port = numberFrom(flags.port ?? env.CLOWDER_BALANCER_PORT, 'port');
  if (port !== undefined) out.port = port;
  const cookie = flags['cookie-name'] ?? env.CLOWDER_BALANCER_COOKIE_NAME;
  if (cookie !== undefined) out.cookieName = cookie;
  const interval = numberFrom(flags['health-interval'] ?? env.CLOWDER_BALANCER_HEALTH_INTERVAL, 'healthIntervalMs');
  if (interval !== undefined) out.healthIntervalMs = interval;
  return out as BalancerConfigInput;
}

export async function runBalancer(flags: BalancerFlags): Promise<void> {
  const balancer = new Balancer(balancerConfigFrom(flags), { logger: createLogger(undefined, 'clowder-balancer') });
  const { address, port } = await balancer.start();
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  const routes = balancer.pool.backends.map((b) => `${b.route}=${b.address}`).join(' ');
  process.stdout.write(
    `${flags.json ? JSON.stringify({ event: 'ready', http: url, backends: routes.split(' ') }) : `clowder balancer ready: ${url} → ${routes}`}\n`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await balancer.stop();
  const { backends: _b, ...counts } = balancer.stats();
  process.stderr.write(`clowder balancer stopped: ${JSON.stringify(counts)}\n`);
}
