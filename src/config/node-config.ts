/**
 * Configuration of a clowder node (`clowder start`): its HTTP listener, its applications and
 * their context paths, the cluster channel and the session defaults. One schema, defaults here.
 */
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { AdminToken } from './admin-token.js';
import type { ChannelConfigInput } from './channel-config.js';
import { NODE_OPTIONS } from './foreign-options.js';
import type { PlacementConfigInput } from './placement-config.js';
import { int, parseConfig } from './schema-helpers.js';
import type { SessionConfigInput } from './session-config.js';
import { topLevelHints } from './top-level-options.js';
import { ProxyTrust, type TrustProxyInput } from './trust-proxy.js';

/** Default `http.drainMs` (see below why). */
export const DEFAULT_DRAIN_MS = 2_000;

const contextPath = z
  .string({ error: 'a context path such as "/app" or "/"' })
  .regex(/^\/([A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*)?$/, {
    error: 'a context path such as "/app" or "/" (no trailing slash)',
  });

const appSchema = z.strictObject({
  /** Context path the application is mounted at (Express-style: the prefix is stripped from req.url). */
  path: contextPath,
  /** Module whose default export is a request listener `(req, res)`; an Express app works. */
  module: z.string({ error: 'a module path or package name' }).min(1, { error: 'a module path or package name' }),
  /** Session settings for this application, over the node-wide `sessions` defaults. */
  sessions: z.record(z.string(), z.unknown()).optional(),
});

const nodeSchema = z.strictObject({
  /** Node name (jvmRoute); also the channel member name. */
  name: z.string().optional(),
  /** HTTP listener. */
  http: z
    .strictObject({
      /** Address to bind the HTTP server; loopback by default. */
      host: z.string({ error: 'an IP address or host name' }).min(1).default('127.0.0.1'),
      port: int(0, 65535, 'a port number from 0 to 65535 (0 = any free port)').default(8080),
      /** How long a graceful stop waits for in-flight requests (after the drain). */
      shutdownTimeoutMs: int(0, 600_000, 'milliseconds from 0 to 600000').default(10_000),
      /**
       * Drain on a graceful stop: readiness answers 503 at once while the node keeps serving new
       * and in-flight requests (each answered with `Connection: close`) for this long, so that a
       * balancer's health check takes it out before it stops accepting; 0 = stop accepting at once.
       * The default covers the shipped HAProxy example (checks every 500 ms, 100 ms while a state
       * changes, down after 2 failures: out within ~0.7 s) with room for a slower check or a loaded host.
       */
      drainMs: int(0, 600_000, 'milliseconds from 0 to 600000 (0 = no drain)').default(DEFAULT_DRAIN_MS),
      /**
       * Prefix of the readiness and stats endpoints (`<prefix>/ready`, `<prefix>/stats`); "" = off.
       * Served to loopback clients whose request no proxy forwarded, and to any client with the
       * adminToken.
       */
      statusPath: z
        .string()
        .regex(/^(\/[A-Za-z0-9._~-]+)*$/, { error: 'a path prefix such as "/_clowder", or "" to turn it off' })
        .default('/_clowder'),
      /**
       * Bearer token (≥ 32 characters) that opens the status endpoints to any client
       * (`Authorization: Bearer <token>`); CLOWDER_ADMIN_TOKEN for `clowder start`. Validated in
       * resolveNodeConfig, which never quotes it.
       */
      adminToken: z.custom<string>().optional(),
      /**
       * The reverse proxies believed when they say the client connected over HTTPS
       * (`X-Forwarded-Proto`, for the session cookie's Secure flag): false (default), true, a
       * number of hops or addresses / CIDR ranges, as Express's 'trust proxy'.
       */
      trustProxy: z.custom<TrustProxyInput>().optional(),
    })
    .prefault({}),
  apps: z
    .array(appSchema, { error: 'a list of { path, module }' })
    .min(1, { error: 'at least one application ({ path, module })' }),
  /** Channel settings (see the channel configuration reference). */
  cluster: z.record(z.string(), z.unknown()).default({}),
  /** Session defaults for every application. */
  sessions: z.record(z.string(), z.unknown()).default({}),
  /** Where this node runs (host, zone), for the BackupManager's anti-affinity (see placement-config.ts). */
  placement: z.record(z.string(), z.unknown()).default({}),
});

export type NodeConfigInput = z.input<typeof nodeSchema>;
export interface NodeConfig {
  readonly name: string | undefined;
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly shutdownTimeoutMs: number;
    readonly drainMs: number;
    readonly statusPath: string;
    readonly adminToken: AdminToken | undefined;
    readonly trustProxy: ProxyTrust;
  };
  readonly apps: readonly { readonly path: string; readonly module: string; readonly sessions?: SessionConfigInput }[];
  readonly cluster: ChannelConfigInput;
  readonly sessions: SessionConfigInput;
  readonly placement: PlacementConfigInput;
}

/** Validates a node config; the channel and session parts are validated by their own schemas at start. */
export function resolveNodeConfig(input: unknown): NodeConfig {
  const p = parseConfig(nodeSchema, input, '', topLevelHints('cluster', NODE_OPTIONS));
  const paths = new Set<string>();
  for (const [i, app] of p.apps.entries()) {
    if (paths.has(app.path))
      throw new ConfigError(`apps.${i}.path`, 'a context path no other application uses', app.path);
    paths.add(app.path);
  }
  const http = {
    ...p.http,
    adminToken: AdminToken.parse(p.http.adminToken, 'http.adminToken'),
    trustProxy: ProxyTrust.parse(p.http.trustProxy, 'http.trustProxy'),
  };
  for (const [key, sessions] of [
    ['sessions', p.sessions],
    ...p.apps.map((a, i) => [`apps.${i}.sessions`, a.sessions] as const),
  ] as const) {
    if (sessions !== undefined && 'trustProxy' in sessions)
      throw new ConfigError(
        `${key}.trustProxy`,
        'left out on a node: set http.trustProxy, which applies to every application of the node',
      );
  }
  return { ...p, http } as NodeConfig;
}
