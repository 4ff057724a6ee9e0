/**
 * `clowder balancer`: a small sticky reverse proxy for development and the demo. Every option, its
 * default and accepted form live here. Production answers are HAProxy and nginx
 * (examples/haproxy, examples/nginx).
 */
import { z } from 'zod';
import { bytes, int, ms, parseConfig, text } from './schema-helpers.js';

/** A backend: the node's route (its `--name`, the cookie's suffix) and its HTTP address. */
const backendSchema = z
  .object({
    route: text(64, 'a node name (the route after the "." of the session cookie)').regex(/^[A-Za-z0-9_.~-]+$/, {
      error: 'a node name of letters, digits and "_.~-"',
    }),
    host: text(255, 'a host name or IP address'),
    port: int(1, 65535, 'a port number from 1 to 65535'),
  })
  .strict();

const balancerSchema = z
  .object({
    /** Address the balancer listens on. */
    host: text(255, 'a host name or IP address').default('127.0.0.1'),
    /** Port the balancer listens on (0: any free port). */
    port: int(0, 65535, 'a port number from 0 to 65535').default(8080),
    /** The nodes, in round-robin order for new clients. */
    backends: z
      .array(backendSchema, { error: 'a list of backends' })
      .min(1, { error: 'one or more backends (--backend NAME=HOST:PORT or CLOWDER_BALANCER_BACKENDS)' })
      .max(64),
    /** Cookie whose suffix after the last "." names the node (Tomcat's jvmRoute). */
    cookieName: text(64).default('JSESSIONID'),
    /** Path asked for health (200 = up). */
    healthPath: text(1024).default('/_clowder/ready'),
    /** How often every backend is checked. */
    healthIntervalMs: ms(10, 600_000).default(1000),
    /** A health check without an answer within this counts as down. */
    healthTimeoutMs: ms(10, 60_000).default(1000),
    /** A connection to a backend not established within this fails (and the request moves on). */
    connectTimeoutMs: ms(10, 60_000).default(500),
    /** A backend silent this long on an open request fails it (504). */
    responseTimeoutMs: ms(100, 3_600_000).default(60_000),
    /** Most backends tried for one request (the first included). */
    maxAttempts: int(1, 64).default(3),
    /** Largest request head from a client. */
    maxHeaderBytes: bytes(1024, 1 << 20).default(16 * 1024),
    /** Most client connections at once; more are closed at once. */
    maxConnections: int(1, 1_000_000).default(1024),
    /** Most connections to one backend (requests beyond wait for one). */
    maxSocketsPerBackend: int(1, 100_000).default(256),
    /** Idle client keep-alive connections are closed after this. */
    keepAliveTimeoutMs: ms(100, 600_000).default(5000),
    /** SIGTERM: requests in flight get this long to finish. */
    shutdownTimeoutMs: ms(0, 600_000).default(10_000),
  })
  .strict();

export type BalancerConfigInput = z.input<typeof balancerSchema>;
export type BalancerConfig = z.output<typeof balancerSchema>;
export type BackendConfig = BalancerConfig['backends'][number];

/** Validates a balancer config; a bad value throws ConfigError naming `balancer.<key>`. */
export function resolveBalancerConfig(input: unknown): BalancerConfig {
  return parseConfig(balancerSchema, input, 'balancer');
}
