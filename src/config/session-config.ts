/**
 * Session manager configuration (Tomcat's DeltaManager and ReplicationValve attributes), with
 * every default in this one schema.
 */
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { type KeyNamer, Problems, prefixed } from './problems.js';
import { collectConfig, deepFreeze, int, ms, text } from './schema-helpers.js';
import { parseSendOptions } from './send-options.js';
import { ProxyTrust, type TrustProxyInput } from './trust-proxy.js';

const contextPath = z
  .string({ error: 'a context path such as "/app" or "/"' })
  .regex(/^\/([A-Za-z0-9._~!$&'()*+,;=:@%-]+(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*)?$/, {
    error: 'a context path such as "/app" or "/" (no trailing slash)',
  });

/** A cookie Domain attribute: a host name of at most 253 characters (nothing that could end the attribute). */
export const COOKIE_DOMAIN = /^(?=.{1,253}$)\.?[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*$/;
/** A cookie Path attribute: starts with "/", printable ASCII without ";" (nothing that could end the attribute). */
export const COOKIE_PATH = /^\/[\x21-\x3a\x3c-\x7e]{0,1023}$/;
/** Longest cookie lifetime accepted, in ms: 400 days, the most browsers keep a cookie (RFC 6265bis). */
export const COOKIE_MAX_AGE_LIMIT = 400 * 86_400_000;

const secure = z.union([z.boolean(), z.literal('auto')], { error: 'true, false or "auto"' });

const cookieSchema = z.strictObject({
  /** Lifetime in ms (sent as Expires and Max-Age); null (default) = a browser-session cookie. */
  maxAge: int(0, COOKIE_MAX_AGE_LIMIT, `milliseconds from 0 to ${COOKIE_MAX_AGE_LIMIT} (400 days), or null`)
    .nullable()
    .optional(),
  /** Domain attribute; unset (default) = the host that answered. */
  domain: z
    .string({ error: 'a domain such as "example.com"' })
    .regex(COOKIE_DOMAIN, {
      error: 'a domain such as "example.com" (letters, digits, "-" and ".")',
    })
    .optional(),
  /** Path attribute; default: the context path. */
  path: z
    .string({ error: 'a path such as "/"' })
    .regex(COOKIE_PATH, {
      error: 'a path starting with "/" (printable, no ";", at most 1024 characters)',
    })
    .optional(),
  /** SameSite attribute: "lax" (default), "strict", "none", true (= strict) or false (none sent). */
  sameSite: z
    .union([z.boolean(), z.enum(['lax', 'strict', 'none', 'Lax', 'Strict', 'None'])], {
      error: '"lax", "strict", "none", true or false',
    })
    .optional(),
  /** Secure attribute: "auto" (default) = when the request came over HTTPS. */
  secure: secure.optional(),
  /** HttpOnly attribute (default true). */
  httpOnly: z.boolean({ error: 'true or false' }).optional(),
});

/** SameSite as it is sent; undefined = no attribute. */
export type SameSite = 'Lax' | 'Strict' | 'None' | undefined;

/** The node-wide cookie settings every session starts with (resolved `sessions.cookie`). */
export interface CookieOptions {
  /** ms; null = a browser-session cookie. */
  readonly maxAge: number | null;
  readonly domain: string | undefined;
  readonly path: string;
  readonly sameSite: SameSite;
  readonly secure: boolean | 'auto';
  readonly httpOnly: boolean;
}

/** A SameSite option value as it is sent. */
export function sameSiteOf(v: boolean | string | undefined): SameSite {
  if (v === true) return 'Strict';
  if (v === false || v === undefined) return undefined;
  const l = v.toLowerCase();
  return l === 'strict' ? 'Strict' : l === 'none' ? 'None' : 'Lax';
}

const sessionSchema = z.strictObject({
  /** The context path the manager serves; also the cookie Path. Default "/". */
  contextPath: contextPath.default('/'),
  /** Session cookie name. */
  cookieName: z
    .string()
    .regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/, { error: 'a cookie name (RFC 6265 token, 1-64 characters)' })
    .default('JSESSIONID'),
  /** Secure cookie attribute: "auto" (default) = when the request came over HTTPS. Same as `cookie.secure`. */
  cookieSecure: secure.optional(),
  /**
   * Library mode: the reverse proxies believed when they say the client connected over HTTPS
   * (`X-Forwarded-Proto`), for cookieSecure "auto" (see trust-proxy.ts for the forms). A node
   * sets it for all its applications with `http.trustProxy`. Default false.
   */
  trustProxy: z.custom<TrustProxyInput | ProxyTrust>().optional(),
  /** SameSite cookie attribute (default "Lax"). Same as `cookie.sameSite`. */
  cookieSameSite: z.enum(['Lax', 'Strict', 'None'], { error: '"Lax", "Strict" or "None"' }).optional(),
  /**
   * The session cookie's attributes, as express-session's `cookie` option: every session starts
   * with these; a request may change them for its session (`req.session.cookie`), and the change
   * replicates with the session.
   */
  cookie: cookieSchema.default({}),
  /**
   * false (default, express-session's `saveUninitialized: false`): a session is created only when a
   * request writes to it; a request that only reads `req.session` creates nothing, sends no cookie
   * and replicates nothing. true: a request that uses `req.session` at all creates one.
   */
  saveUninitialized: z.boolean({ error: 'true or false' }).default(false),
  /** true: every response to a request with a session re-sends the cookie, with a fresh expiry (express-session's `rolling`). */
  rolling: z.boolean({ error: 'true or false' }).default(false),
  /**
   * Accepted for express-session compatibility and ignored: clowder replicates what a request
   * changed and tells the others about reads (rate-limited), so there is nothing to re-save.
   */
  resave: z.boolean({ error: 'true or false' }).optional(),
  /** Idle time after which a session expires, in seconds (Tomcat's session-timeout). 0 or less = never. */
  maxInactiveInterval: int(-1, 31_536_000, 'seconds from -1 to 31536000').default(1800),
  /** How often idle sessions are looked for, in seconds (Tomcat: processExpiresFrequency × backgroundProcessorDelay). */
  processExpiresFrequency: int(1, 3600, 'seconds from 1 to 3600').default(10),
  /** Fire attribute and session listeners for changes that arrive from other nodes. */
  notifyListenersOnReplication: z.boolean({ error: 'true or false' }).default(true),
  /**
   * Stopping this node expires, cluster-wide, the sessions it served last (owns). Default false:
   * the others keep them. (Tomcat's DeltaManager expires every local session, i.e. all of them.)
   */
  expireSessionsOnShutdown: z.boolean({ error: 'true or false' }).default(false),
  /** Send options for replication: "async" (Tomcat's 8) or "sync" (the response waits until every member applied it). */
  sendOptions: z
    .union([z.number(), z.string()], { error: 'async, sync or Tomcat send options (8, 6, "use_ack,sync")' })
    .default('async'),
  /** Requests whose path matches never replicate (e.g. static files). Tomcat's ReplicationValve filter. */
  replicationFilter: z.string({ error: 'a regular expression' }).optional(),
  /**
   * Requests whose path matches only read the session: they never wait to take it over from the
   * node that owns it (ownership "migrate"), they never create one, and changing it throws
   * ERR_CLOWDER_SESSION_READ_ONLY. Such a read may see the session as it was one replication ago
   * (asynchronous replication sends a change before the writer's client is answered, so on a
   * quiet network it has arrived). Like PHP's read_and_close or ASP.NET's read-only session state.
   */
  readOnlyFilter: z.string({ error: 'a regular expression' }).optional(),
  /**
   * Per-session request serialization (PHP's and ASP.NET's session lock, cluster-wide): the
   * requests of one session run one at a time across the cluster, in arrival order on each node,
   * so a handler that awaits between reading and writing the session loses no update. false
   * (default): requests of one session run concurrently (one live object per node). true: every
   * request that is not on a readOnlyFilter path. A string: a regular expression on the request
   * path (as readOnlyFilter): only matching requests serialize. Read-only paths never wait, and a
   * request without a session (no cookie, or an unknown id) is never blocked. The node-level
   * ownership protocol gives the cross-node exclusivity (sessions.ownership "migrate").
   */
  serialize: z
    .union([z.boolean(), z.string()], { error: 'true, false or a regular expression on the request path' })
    .default(false),
  /**
   * With serialize: the longest a request waits for its turn on the session (behind this node's
   * earlier requests, then for the take-over from the node that holds it) before it is answered
   * 503 with Retry-After (counted: serializeTimeouts). Default 10000: twice the default
   * ownershipTimeoutMs, so that a request may wait for its queue and one hand-over.
   */
  serializeTimeoutMs: ms(100, 600_000).default(10_000),
  /**
   * With serialize: most requests of one session waiting on this node; one more is answered 503
   * at once (counted: serializeRefused). Bounds the memory a client can pin with parallel requests.
   */
  serializeQueueLimit: int(1, 100_000, 'a number of requests from 1 to 100000').default(64),
  /** How long a starting node waits for the other nodes' sessions before it serves. */
  stateTransferTimeoutMs: ms(100, 3_600_000).default(60_000),
  /** When the transfer times out: "start-cold" (serve with what arrived, loud warning) or "fail" (refuse to start). */
  onStateTransferTimeout: z.enum(['start-cold', 'fail'], { error: '"start-cold" or "fail"' }).default('start-cold'),
  /** Sessions per state-transfer chunk (each acknowledged once applied; at most two in flight). */
  stateTransferChunkSize: int(1, 100_000).default(1000),
  /** A request that only reads a session tells the others at most this often (ms), so they do not expire it. */
  accessedIntervalMs: ms(100, 3_600_000).optional(),
  /** How long ids of invalidated sessions are remembered, so late messages cannot revive them. */
  tombstoneTtlMs: ms(1000, 86_400_000).default(300_000),
  /**
   * Without sticky balancing, two nodes could serve the same session at once and one write would
   * overwrite the other. "migrate" (default): a node about to serve a session another node owns
   * first takes it over (one round trip; the owner hands over once its own requests on it are done
   * and every change was sent), so writes never race and a read never sees stale data (except on
   * readOnlyFilter paths, which do not take the session over). With sticky
   * balancing the owner is always local and this costs nothing. "none": Tomcat's behaviour —
   * concurrent writes to one attribute on two nodes are detected and reported, the newer wins.
   */
  ownership: z.enum(['migrate', 'none'], { error: '"migrate" or "none"' }).default('migrate'),
  /**
   * With ownership "migrate": how long a node waits for the owner to hand a session over (its
   * requests on the session must end first). The wait ends at once when the owner is removed from
   * the cluster (crashed, left). An owner still alive after this (a request longer than this) loses
   * the session anyway: the waiting node serves it, and the old owner's later writes to it are
   * refused on every node (counted: fencedWrites) and its copy reverts to the new owner's. Longer
   * than your slowest request on one session; not the transport's sender.timeoutMs.
   */
  ownershipTimeoutMs: ms(100, 600_000).default(5000),
  /**
   * true (default): a request that used a session ends its response at the end of the event-loop
   * turn, after the turn's replication batch was handed to the cluster connections, together with
   * the turn's other responses. Fewer wakeups of clients and of this process (on a 2-core machine
   * +50-100 % req/s at saturation, see the README's performance section), and a client never holds
   * a response before the change it acknowledges is on its way to the other nodes. It costs a
   * response the rest of the turn (microseconds; at most one turn's work at saturation). false:
   * each response ends at once (asynchronous replication may then reach a peer after the client
   * was answered; with ownership "migrate" that is still never visible).
   */
  batchResponses: z.boolean({ error: 'true or false' }).default(true),
  /**
   * Most sessions this node creates and holds (-1 = unlimited); creating more fails with 503.
   * Copies of other nodes' sessions do not count (maxReplicaSessions bounds those), so a flood of
   * sessions on one node cannot stop the others from creating theirs. In production, size it from
   * memory: every node holds every session, so nodes × maxActiveSessions × the average session
   * size must fit the heap (e.g. 4 nodes, 2 KiB sessions, 2 GiB for sessions: about 250,000), and
   * keep maxReplicaSessions ≥ (nodes − 1) × maxActiveSessions.
   */
  maxActiveSessions: int(-1, 1e9).default(-1),
  /**
   * Most copies of other nodes' sessions this node holds (-1 = unlimited). Beyond it, a new session
   * from a member is refused (counted as refusedReplicaLimit, logged at most every 10 s); the
   * sessions held are kept. Every node holds every session of the cluster, so this is the most
   * sessions the rest of the cluster may have: the default, one million, is more than fits in a
   * default Node heap at a kilobyte or two a session, so it is only reached by a flood (or a
   * cluster that needs a larger heap and this raised with it).
   */
  maxReplicaSessions: int(-1, 1e9).default(1_000_000),
  /**
   * Which session manager serves the context. "delta" (default, Tomcat's DeltaManager): every
   * node serving the context holds every session and every change goes to all of them. "backup"
   * (Tomcat's BackupManager, better placed): a session lives on the node serving it and on
   * `backups` other nodes serving the context, chosen by rendezvous hashing with host and zone
   * anti-affinity; memory and messages per node stay constant as the cluster grows. The two may
   * serve different contexts in one cluster; all nodes serving one context must use the same.
   */
  manager: z.enum(['delta', 'backup'], { error: '"delta" or "backup"' }).default('delta'),
  /**
   * With manager "backup": copies of each session besides the primary's (k, default 1). More than
   * the other nodes serving the context degrades to what exists (logged once, shown in stats) and
   * is restored when members arrive. 0 = no copies (a lost node loses its sessions).
   */
  backups: int(0, 64, 'an integer from 0 to 64 (copies of each session besides the primary)').default(1),
  /**
   * With manager "backup": how often (ms) this node checks that the backups of the sessions it
   * serves hold them at its version, and re-sends the copies that are missing or older (copies
   * whose send failed, a copy a member dropped or refused), in acknowledged chunks of
   * stateTransferChunkSize, without waiting for a membership change. 0 = never (copies are then
   * restored only at membership changes). Default 30000: one list of ids and versions per backup
   * and interval.
   */
  repairIntervalMs: z
    .union([z.literal(0), ms(100, 3_600_000)], { error: '0 (off) or a duration in milliseconds from 100 to 3600000' })
    .default(30_000),
  /**
   * With manager "backup": the longest a graceful stop spends handing this node's sessions over
   * before it leaves (ms): the members that will hold each session once this node is gone receive
   * their copy first (acknowledged chunks), so no session has fewer than 1 + backups copies while
   * the cluster restores the factor. 0 = leave at once (the others restore the copies afterwards).
   */
  stopHandOverMs: ms(0, 600_000).default(5000),
  /**
   * Name of this context's sessions in cluster messages (defaults to contextPath). Not `name`:
   * that is express-session's cookie name, which here is cookieName.
   */
  contextName: text(200).optional(),
});

export type SessionConfigInput = z.input<typeof sessionSchema>;
type Parsed = z.output<typeof sessionSchema>;

export interface SessionConfig
  extends Omit<
    Parsed,
    | 'sendOptions'
    | 'replicationFilter'
    | 'readOnlyFilter'
    | 'serialize'
    | 'accessedIntervalMs'
    | 'contextName'
    | 'trustProxy'
    | 'cookie'
    | 'cookieSecure'
    | 'cookieSameSite'
  > {
  /** The context's name in cluster messages: contextName, else contextPath. */
  readonly name: string;
  /** Which proxies' X-Forwarded-Proto is believed (cookieSecure "auto"). */
  readonly trustProxy: ProxyTrust;
  /** The cookie every session starts with. */
  readonly cookie: CookieOptions;
  /** = cookie.secure. */
  readonly cookieSecure: boolean | 'auto';
  /** = cookie.sameSite. */
  readonly cookieSameSite: SameSite;
  readonly sendOptions: number;
  readonly replicationFilter: RegExp | undefined;
  readonly readOnlyFilter: RegExp | undefined;
  /** false, true (every request not on a read-only path), or the paths that serialize. */
  readonly serialize: boolean | RegExp;
  readonly accessedIntervalMs: number;
}

/**
 * Validates, fills defaults, freezes.
 * @throws ConfigError listing every problem, each naming the key (prefixed with `prefix`).
 */
export function resolveSessionConfig(input: SessionConfigInput = {}, prefix = 'sessions'): SessionConfig {
  return Problems.resolve((problems) => collectSessionConfig(input, prefixed(prefix), problems));
}

/**
 * {@link resolveSessionConfig} recording its problems in `problems` (keys named by `name`)
 * instead of throwing; undefined when `input` has a problem. Each cross-field check runs when its
 * own keys are valid.
 */
export function collectSessionConfig(input: unknown, name: KeyNamer, problems: Problems): SessionConfig | undefined {
  const before = problems.list.length;
  const p: Parsed | undefined = collectConfig(sessionSchema, input, name, problems);
  if (p === undefined) return undefined;
  const { ok, fail } = problems.scoped(name);
  const so = p.sendOptions;
  const sendOptions = ok('sendOptions')
    ? problems.run(() => parseSendOptions(so === 'sync' ? 'use_ack,sync' : so, name('sendOptions')))
    : undefined;
  const replicationFilter = ok('replicationFilter')
    ? problems.run(() => regexOf(p.replicationFilter, name('replicationFilter')))
    : undefined;
  const readOnlyFilter = ok('readOnlyFilter')
    ? problems.run(() => regexOf(p.readOnlyFilter, name('readOnlyFilter')))
    : undefined;
  if (ok('manager', 'ownership') && p.manager === 'backup' && p.ownership !== 'migrate')
    fail(
      'ownership',
      '"migrate" with manager "backup" (one node at a time writes a session; its backups follow it)',
      p.ownership,
    );
  const serialize =
    typeof p.serialize === 'boolean'
      ? p.serialize
      : ok('serialize')
        ? (problems.run(() => regexOf(p.serialize as string, name('serialize'))) ?? false)
        : false;
  const c = p.cookie;
  if (ok('cookie.secure', 'cookieSecure') && c.secure !== undefined && p.cookieSecure !== undefined)
    fail('cookieSecure', `one of ${name('cookieSecure')} and ${name('cookie.secure')}, not both`);
  if (ok('cookie.sameSite', 'cookieSameSite') && c.sameSite !== undefined && p.cookieSameSite !== undefined)
    fail('cookieSameSite', `one of ${name('cookieSameSite')} and ${name('cookie.sameSite')}, not both`);
  const trustProxy = ok('trustProxy')
    ? problems.run(() => ProxyTrust.parse(p.trustProxy, name('trustProxy')))
    : undefined;
  if (problems.list.length > before) return undefined;
  const cookie: CookieOptions = {
    maxAge: c.maxAge ?? null,
    domain: c.domain,
    path: c.path ?? p.contextPath,
    sameSite: sameSiteOf(c.sameSite ?? p.cookieSameSite ?? 'Lax'),
    secure: c.secure ?? p.cookieSecure ?? 'auto',
    httpOnly: c.httpOnly ?? true,
  };
  const maxMs = p.maxInactiveInterval > 0 ? p.maxInactiveInterval * 1000 : 3_600_000;
  const { contextName, ...rest } = p;
  const config: SessionConfig = {
    ...rest,
    name: contextName ?? p.contextPath,
    cookie,
    cookieSecure: cookie.secure,
    cookieSameSite: cookie.sameSite,
    sendOptions: sendOptions!,
    replicationFilter,
    readOnlyFilter,
    serialize,
    accessedIntervalMs: p.accessedIntervalMs ?? Math.max(100, Math.floor(maxMs / 4)),
    trustProxy: trustProxy!,
  };
  return deepFreeze(config, new Set(['replicationFilter', 'readOnlyFilter', 'serialize', 'trustProxy']));
}

/** A path filter: undefined when unset or empty. @throws ConfigError naming `key`. */
function regexOf(source: string | undefined, key: string): RegExp | undefined {
  if (source === undefined || source === '') return undefined;
  try {
    return new RegExp(source);
  } catch (err) {
    throw new ConfigError(key, `a valid regular expression (${(err as Error).message})`, source);
  }
}
