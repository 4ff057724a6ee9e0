/**
 * Configuration of a clowder node (`clowder start`): its HTTP listener, its applications and
 * their context paths, the cluster channel and the session defaults. One schema, defaults here.
 */
import { z } from 'zod';
import { AdminToken } from './admin-token.js';
import { type ChannelConfigInput, collectChannelConfig, nodeNameSchema } from './channel-config.js';
import { NODE_OPTIONS } from './foreign-options.js';
import { collectPlacementConfig, type PlacementConfigInput } from './placement-config.js';
import { type KeyNamer, Problems, prefixed } from './problems.js';
import { collectConfig, int } from './schema-helpers.js';
import { collectSessionConfig, type SessionConfigInput } from './session-config.js';
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
  /** Node name (jvmRoute); also the channel member name (over cluster.name). */
  name: nodeNameSchema.optional(),
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
      /**
       * Owner forwarding: a request whose session another node owns is proxied to that node over
       * HTTP instead of moving the session here. "off" (default): an HTTP hop costs more CPU than
       * moving the session over the cluster's batched connections (bench/backup --forward);
       * "auto": for applications with the BackupManager; "always": every application. Needs a
       * fixed `port` (advertised to the other nodes; with 0 nothing is forwarded here).
       */
      forward: z.enum(['auto', 'always', 'off'], { error: '"auto", "always" or "off"' }).default('off'),
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
    readonly forward: 'auto' | 'always' | 'off';
  };
  readonly apps: readonly { readonly path: string; readonly module: string; readonly sessions?: SessionConfigInput }[];
  readonly cluster: ChannelConfigInput;
  readonly sessions: SessionConfigInput;
  readonly placement: PlacementConfigInput;
}

/**
 * Validates a node config and every component in it: the HTTP listener, the cluster channel, the
 * node-wide sessions and each application's (over them), and the placement.
 * @throws ConfigError listing every problem at once, each named by the dotted key as written in
 * the node config (`cluster.detector.mode`, `apps.0.sessions.backups`).
 */
export function resolveNodeConfig(input: unknown): NodeConfig {
  const problems = new Problems();
  const p = collectConfig(nodeSchema, input, prefixed(''), problems, topLevelHints('cluster', NODE_OPTIONS));
  // The checks below read the input itself: a bad key elsewhere (an app) must not hide them.
  const raw = objectOr(input);
  const http = objectOr(raw.http);
  const checked = <T>(key: string, parse: () => T): T | undefined =>
    problems.ok(key) ? problems.run(parse) : undefined;
  const adminToken = checked('http.adminToken', () => AdminToken.parse(http.adminToken, 'http.adminToken'));
  const trustProxy = checked('http.trustProxy', () => ProxyTrust.parse(http.trustProxy, 'http.trustProxy'));
  const apps = Array.isArray(raw.apps) ? raw.apps.map(objectOr) : [];
  const paths = new Set<unknown>();
  for (const [i, app] of apps.entries()) {
    if (!problems.ok(`apps.${i}.path`) || !('path' in app)) continue;
    if (paths.has(app.path))
      problems.add({ key: `apps.${i}.path`, expected: 'a context path no other application uses', received: app.path });
    paths.add(app.path);
  }
  const sessions = objectOr(raw.sessions);
  for (const [key, s] of [
    ['sessions', sessions],
    ...apps.map((a, i) => [`apps.${i}.sessions`, objectOr(a.sessions)] as const),
  ] as const) {
    if ('trustProxy' in s)
      problems.add({
        key: `${key}.trustProxy`,
        expected: 'left out on a node: set http.trustProxy, which applies to every application of the node',
      });
  }
  // Each component as createClusterNode builds it, named where the user wrote each key.
  const name = problems.ok('name') && typeof raw.name === 'string' ? raw.name : undefined;
  if (!problems.has('cluster'))
    collectChannelConfig({ ...objectOr(raw.cluster), ...(name ? { name } : {}) }, prefixed('cluster'), problems);
  if (!problems.has('sessions')) collectSessionConfig(sessions, prefixed('sessions'), problems);
  for (const [i, app] of apps.entries()) {
    const own = objectOr(app.sessions);
    const path = problems.ok(`apps.${i}.path`) ? app.path : undefined;
    // An application's sessions are the node-wide ones with its own over them: a key is named
    // where it was written (a problem of a node-wide key alone was reported above already).
    const where: KeyNamer = (key) =>
      key !== '' && !Object.hasOwn(own, key.split('.')[0]!) && Object.hasOwn(sessions, key.split('.')[0]!)
        ? `sessions.${key}`
        : prefixed(`apps.${i}.sessions`)(key);
    if (!problems.has(`apps.${i}.sessions`) && !problems.has('sessions'))
      collectSessionConfig({ ...sessions, ...own, contextPath: path, trustProxy }, where, problems);
  }
  if (!problems.has('placement')) collectPlacementConfig(raw.placement, prefixed('placement'), problems);
  problems.throwIfAny();
  return { ...p!, http: { ...p!.http, adminToken, trustProxy } } as NodeConfig;
}

/** `value` when it is an object (its keys readable), else an empty one. */
function objectOr(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}
