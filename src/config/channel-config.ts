/**
 * The channel's configuration: every option, its default and its accepted form, in one place.
 * `resolveChannelConfig` validates a user's partial config, fills in the defaults, checks the
 * security rule (no unauthenticated traffic beyond loopback) and freezes the result.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { z } from 'zod';
import { firstExternalIPv4, isLoopback, parseHostPort } from '../core/net.js';
import { normalizeClusterKeys } from './cluster-key.js';
import { type KeyNamer, Problems, prefixed } from './problems.js';
import { bytes, collectConfig, deepFreeze, int, ms, text } from './schema-helpers.js';
import { parseSendOptions } from './send-options.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A node name (Tomcat's jvmRoute): the channel's `name`, and a node config's. */
export const nodeNameSchema = z
  .string({ error: 'a node name (jvmRoute): 1-64 characters from A-Z a-z 0-9 . _ -' })
  .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'a node name (jvmRoute): 1-64 characters from A-Z a-z 0-9 . _ -' });

const hostPort = z
  .string({ error: 'a "host:port" string' })
  .refine((s) => parseHostPort(s) !== undefined, { error: 'a "host:port" string, e.g. "127.0.0.1:4000"' });

const address = z
  .string({ error: 'an IP address, a host name or "auto"' })
  .min(1, { error: 'an IP address, a host name or "auto"' });

const sendOptions = z
  .union([z.number(), z.string()], {
    error: 'Tomcat send options: an integer (8, 2, 6) or names ("async", "use_ack,sync")',
  })
  .default(8);

/** Receiver (TCP server) options; Tomcat's NioReceiver defaults. */
const receiverSchema = z.strictObject({
  /** Address to bind and advertise. "auto" = the first non-internal IPv4 address. Default loopback. */
  address: address.default('127.0.0.1'),
  /** First port to try; 0 = any free port (tests). Tomcat: 4000. */
  port: int(0, 65535, 'a port number from 0 to 65535 (0 = any free port)').default(4000),
  /** How many ports to try from `port` upwards (4000-4099 with the defaults). */
  autoBind: int(1, 1000).default(100),
  /**
   * A connection that has not completed its hello within this is closed, and so is one whose first
   * authenticated record (first frame after the hello) does not follow within this again.
   */
  handshakeTimeoutMs: ms(100, 60_000).default(5000),
  /** Inbound connections accepted at once; more are refused and counted. */
  maxConnections: int(1, 100_000).default(1024),
  /**
   * Inbound connections from one IP address at once; more are refused and counted. Nodes on one
   * host share 127.0.0.1: each peer holds one connection here, plus short-lived probes.
   */
  maxConnectionsPerAddress: int(1, 100_000).default(64),
  /**
   * An inbound connection that sends nothing for this long is closed and counted. Senders keep an
   * idle connection alive with a PING every third of their own setting: use the same on every node.
   */
  idleTimeoutMs: ms(1000, 3_600_000).default(60_000),
  /**
   * Peers on the same host (and network namespace) talk over a Unix socket instead of TCP
   * loopback: this node also listens on an abstract socket named after its member id (Linux only),
   * and connects to a peer's before trying TCP. Same hello, key and limits. false = TCP only.
   */
  localSocket: z.boolean({ error: 'true or false' }).default(true),
});

/** Sender options; Tomcat's PooledParallelSender defaults where they exist. */
const senderSchema = z.strictObject({
  /** Bound for an acknowledged send: write plus acknowledgement. Tomcat: 3000 ms. */
  timeoutMs: ms(1, 600_000).default(3000),
  /** TCP connect timeout. */
  connectTimeoutMs: ms(1, 60_000).default(1000),
  /** Resends of an acknowledged message after its connection broke. Tomcat: 1. */
  maxRetryAttempts: int(0, 10).default(1),
  /** Bytes queued for one member (ours plus the socket's) before sends to it fail with ERR_CLOWDER_QUEUE_FULL. */
  maxQueueBytes: bytes(64 * KiB, 4096 * MiB).default(64 * MiB),
  /** First reconnect delay after a connection failed; doubles up to reconnectMaxMs. */
  reconnectMinMs: ms(1, 60_000).default(50),
  reconnectMaxMs: ms(1, 600_000).default(5000),
});

/** Multicast heartbeat membership; Tomcat's McastService defaults, loopback interface by default. */
const multicastSchema = z.strictObject({
  type: z.literal('multicast'),
  /** Multicast group; group and port identify the cluster. */
  address: z
    .string()
    .refine((a) => isIP(a) === 4 && Number(a.split('.')[0]) >= 224 && Number(a.split('.')[0]) <= 239, {
      error: 'an IPv4 multicast group address (224.0.0.0 - 239.255.255.255)',
    })
    .default('228.0.0.4'),
  port: int(1, 65535, 'a port number from 1 to 65535').default(45564),
  /** Heartbeat interval. */
  frequencyMs: ms(10, 60_000).default(500),
  /** A member not heard from for this long is suspected (the failure detector then verifies it). */
  dropTimeMs: ms(50, 600_000).default(3000),
  /** Interface (its IPv4 address) to send and join on. Default loopback: the cluster stays on this host. */
  interface: address.default('127.0.0.1'),
  /** Multicast TTL; "auto" = 0 on a loopback interface (never leaves the host), 1 otherwise. */
  ttl: z.union([z.literal('auto'), int(0, 255)], { error: '"auto" or an integer from 0 to 255' }).default('auto'),
  /** Address to bind the multicast socket to (default: the group address). */
  bind: address.optional(),
});

/** Static membership: a fixed list of peers whose liveness is checked over TCP. */
const staticSchema = z.strictObject({
  type: z.literal('static'),
  /** Peers as "host:port" of their receivers. May include this node itself (it is skipped). */
  members: z
    .array(hostPort, { error: 'a list of "host:port" strings' })
    .min(1, { error: 'a non-empty list of "host:port" strings' }),
  /** How often each peer is pinged. */
  pingIntervalMs: ms(10, 60_000).default(500),
  /** A peer that has not answered for this long is suspected (then verified by the failure detector). */
  dropTimeMs: ms(50, 600_000).default(3000),
});

/** A DNS name: labels of letters, digits, "-" and "_" (SRV names start with "_"), at most 253 characters. */
const DNS_NAME =
  /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;
const dnsNameError =
  'a DNS name, e.g. "clowder.default.svc.cluster.local" (A/AAAA records) or "_clowder._tcp.clowder.default.svc.cluster.local" (SRV records)';

/** A DNS server as node:dns takes it: an IP address, optionally with a port ("10.0.0.10", "127.0.0.1:5353", "[::1]:53"). */
const dnsServer = z
  .string({ error: 'a DNS server: "ip" or "ip:port" (IPv6 with a port: "[::1]:53")' })
  .refine((s) => isIP(s) !== 0 || (parseHostPort(s) !== undefined && isIP(parseHostPort(s)!.host) !== 0), {
    error: 'a DNS server: "ip" or "ip:port" (IPv6 with a port: "[::1]:53"); an address, not a host name',
  });

/**
 * DNS membership: the peers are the addresses a name resolves to, re-resolved every refreshMs
 * (a Kubernetes headless Service, a Docker Compose service). Each address is then checked over
 * TCP as with static membership; an address that leaves DNS stays a member while it answers.
 */
const dnsSchema = z.strictObject({
  type: z.literal('dns'),
  /** The name: A/AAAA records on `port`, or SRV records (ports from the records) when it starts with "_". */
  name: z.string({ error: dnsNameError }).regex(DNS_NAME, { error: dnsNameError }),
  /** The peers' receiver port for A/AAAA answers. Default: this node's receiver.port. */
  port: int(1, 65535, 'a port number from 1 to 65535').optional(),
  /** DNS servers to ask; default: the system's resolver configuration (/etc/resolv.conf). */
  servers: z
    .array(dnsServer, { error: 'a list of DNS servers ("ip" or "ip:port")' })
    .min(1, { error: 'a non-empty list of DNS servers ("ip" or "ip:port"), or leave it out for the system resolver' })
    .max(16, { error: 'at most 16 DNS servers' })
    .optional(),
  /** How often the name is resolved again. */
  refreshMs: ms(100, 600_000).default(5000),
  /** Addresses taken from DNS at most (this node's own included); more are refused and counted. */
  maxMembers: int(1, 10_000).default(256),
  /** How often each address is pinged. */
  pingIntervalMs: ms(10, 60_000).default(500),
  /** A peer that has not answered for this long is suspected (then verified by the failure detector). */
  dropTimeMs: ms(50, 600_000).default(3000),
});

const membershipSchema = z
  .discriminatedUnion('type', [multicastSchema, staticSchema, dnsSchema], {
    error: 'an object with type "multicast", "static" or "dns"',
  })
  .prefault({ type: 'multicast' });

const failureDetectorSchema = z.strictObject({
  type: z.literal('failureDetector'),
  /** TCP connect + hello timeout when verifying a suspect (Tomcat's connectTimeout). */
  verifyTimeoutMs: ms(10, 60_000).default(1000),
  /** How long a member that passed verification stays watched (Tomcat's removeSuspectsTimeout). */
  removeSuspectsTimeoutMs: ms(1000, 86_400_000).default(300_000),
});
const messageDispatchSchema = z.strictObject({
  type: z.literal('messageDispatch'),
  /** Bytes of asynchronous messages waiting in the dispatch queue; beyond, sends fail (or, with alwaysSend, wait). */
  maxQueueBytes: bytes(64 * KiB, 4096 * MiB).default(64 * MiB),
  /** When the queue is full: true = send synchronously instead (Tomcat's default), false = fail. */
  alwaysSend: z.boolean({ error: 'true or false' }).default(true),
});
const throughputSchema = z.strictObject({
  type: z.literal('throughput'),
  /** Log a throughput report every this many messages sent + received (0 = never). */
  logEvery: int(0, 1e9).default(0),
});
const domainFilterSchema = z.strictObject({
  type: z.literal('domainFilter'),
  /** Log every Nth refused message or member. */
  logEvery: int(1, 1e9).default(100),
});
const fragmentationSchema = z.strictObject({
  type: z.literal('fragmentation'),
  /** Messages larger than this travel in fragments of this size. */
  fragmentBytes: bytes(1 * KiB, 64 * MiB).default(256 * KiB),
  /** An incomplete message whose last fragment is older than this is dropped and counted. */
  expireMs: ms(100, 3_600_000).default(60_000),
  /** Incomplete messages one member may have open (its messages arrive in order: one at a time). */
  maxOpenPerMember: int(1, 10_000).default(4),
  /** Incomplete messages open on this node, from all members together. */
  maxOpenMessages: int(1, 100_000).default(64),
  /** Bytes held by incomplete messages on this node (one member: at most maxMessageBytes). */
  maxOpenBytes: bytes(64 * KiB, 4096 * MiB).default(128 * MiB),
});
const staticMembersSchema = z.strictObject({
  type: z.literal('staticMembers'),
  /** Peers added next to what the membership service reports (Tomcat's StaticMembershipInterceptor). */
  members: z.array(hostPort).min(1, { error: 'a non-empty list of "host:port" strings' }),
  pingIntervalMs: ms(10, 60_000).default(500),
  dropTimeMs: ms(50, 600_000).default(3000),
});

const builtinInterceptor = z.discriminatedUnion(
  'type',
  [
    failureDetectorSchema,
    messageDispatchSchema,
    throughputSchema,
    domainFilterSchema,
    fragmentationSchema,
    staticMembersSchema,
  ],
  {
    error:
      'an interceptor: "failureDetector", "messageDispatch", "throughput", "domainFilter", "fragmentation", "staticMembers", an object with such a type, or a custom interceptor object',
  },
);

const INTERCEPTOR_NAMES = [
  'failureDetector',
  'messageDispatch',
  'throughput',
  'domainFilter',
  'fragmentation',
] as const;

/** A custom interceptor object (see channel/interceptor.ts): anything with a string `name` and hook functions. */
const customInterceptor = z.custom<{ name: string; type?: undefined }>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { name?: unknown }).name === 'string' && !('type' in v),
  { error: 'a custom interceptor object with a string "name"' },
);

const interceptorEntry = z.union([
  z
    .enum(INTERCEPTOR_NAMES, { error: `one of ${INTERCEPTOR_NAMES.join(', ')}` })
    .transform((type) => builtinInterceptor.parse({ type })),
  builtinInterceptor,
  customInterceptor,
]);

/** Default interceptor stack, top (application side) to bottom (network side). */
export const DEFAULT_INTERCEPTORS = [
  'throughput',
  'domainFilter',
  'messageDispatch',
  'fragmentation',
  'failureDetector',
] as const;

/**
 * Failure detector for silent failures (a partition, a paused process: no connection reset), on
 * SWIM with HashiCorp memberlist's Lifeguard extensions. Each probe interval one member (a
 * randomized round robin) gets an authenticated UDP ping at its receiver port number; no ack within
 * the probe timeout → `indirectChecks` other members ping it for us; still nothing by the end of
 * the interval → suspected. A suspicion is told to everyone (and, Lifeguard's buddy system, on
 * every ping to the suspect, who refutes it with a higher incarnation); unrefuted after the
 * suspicion timeout and unanswered over TCP (fresh connection, or a ping on the open one:
 * the verification every removal needs) → removed. Detection with the defaults, 3 nodes: ≈ 0.4-0.7 s.
 */
const detectorSchema = z.strictObject({
  /**
   * "lifeguard" (default): SWIM plus local health (probe interval and timeout × a multiplier that
   * grows on missed acks and nacks, shrinks on success), nacks from indirect probers, the buddy
   * system, and a suspicion timeout that starts long and shrinks with independent confirmations.
   * "swim": plain SWIM (fixed timeouts, suspicion timeout = the minimum), for comparison.
   * "off": no probing; silent members go after membership's dropTimeMs plus verification.
   */
  mode: z.enum(['lifeguard', 'swim', 'off'], { error: '"lifeguard", "swim" or "off"' }).default('lifeguard'),
  /** One member is probed per interval (× the local-health multiplier). memberlist LAN: 1000. */
  probeIntervalMs: ms(10, 60_000).default(100),
  /** Wait this long (× the local-health multiplier) for a direct ack before asking others. Below probeIntervalMs. */
  probeTimeoutMs: ms(5, 60_000).default(50),
  /** Members asked to probe an unanswering target (at most the members there are besides it). */
  indirectChecks: int(0, 16).default(3),
  /** Suspicion timeout minimum = suspicionMult × max(1, log10(n)) × probeIntervalMs. memberlist LAN: 4. */
  suspicionMult: int(1, 100).default(3),
  /** Lifeguard: an unconfirmed suspicion lasts up to suspicionMaxMult × that minimum. memberlist: 6. */
  suspicionMaxMult: int(1, 100).default(3),
  /** Lifeguard: the local-health multiplier's ceiling (1 = never slows down). memberlist: 8. */
  awarenessMax: int(1, 64).default(8),
  /** Bound of one TCP verification of a suspect (several run while the suspicion lasts). */
  verifyTimeoutMs: ms(10, 60_000).default(300),
});

const channelSchema = z.strictObject({
  /** This node's name, Tomcat's jvmRoute (the session-id suffix a sticky balancer routes on). Default: random. */
  name: nodeNameSchema.optional(),
  /** Cluster partition: members of other domains are invisible to this one. */
  domain: text(64).default('default'),
  /**
   * Shared cluster key: authenticates every frame and heartbeat (and encrypts with `encrypt`).
   * At least 32 characters; e.g. the output of `openssl rand -base64 32` (see cluster-key.ts for
   * what is accepted and which keys are stretched). A list rotates keys without downtime: the
   * first key sends, every key is accepted (at most 4). Without it (and without `insecure`), the
   * node uses a key file. Checked in resolveChannelConfig, whose errors never echo the key.
   */
  clusterKey: z.custom<string | string[]>(() => true).optional(),
  /**
   * File holding the cluster key (one key per line, the first sends; `#` comments). Default, when
   * no clusterKey is given: `$XDG_CONFIG_HOME/clowder/cluster.key`, else `~/.clowder/cluster.key`,
   * created (mode 0600, directory 0700) on first start. Must not be readable or writable by group
   * or others. Given explicitly it may be copied to every host (like Erlang's cookie).
   */
  keyFile: text(4096, 'a file path').optional(),
  /** With a clusterKey: also encrypt (AES-256-GCM). false = authenticate only. */
  encrypt: z.boolean({ error: 'true or false' }).default(true),
  /**
   * Run without any key (no clusterKey, no key file): unauthenticated cluster traffic, on loopback
   * or beyond. Say so only on a trusted network.
   */
  insecure: z.boolean({ error: 'true or false' }).default(false),
  /** Hellos and heartbeats whose timestamp is further than this from ours are refused (clocks must agree this well). */
  replayWindowMs: ms(1000, 3_600_000).default(30_000),
  /** Small application value carried in the member descriptor (the session layer lists its contexts). */
  payload: z.unknown().optional(),
  /** Default send options for `send()` (Tomcat's channelSendOptions): 8 = async. */
  sendOptions,
  /** Largest frame accepted or sent; bigger messages need the fragmentation interceptor. */
  maxFrameBytes: bytes(64 * KiB, 1024 * MiB).default(4 * MiB),
  /** Largest message (after reassembly) accepted. */
  maxMessageBytes: bytes(64 * KiB, 4096 * MiB).default(64 * MiB),
  receiver: receiverSchema.prefault({}),
  sender: senderSchema.prefault({}),
  membership: membershipSchema,
  detector: detectorSchema.prefault({}),
  /** Interceptor stack, top (application side) first. Default: DEFAULT_INTERCEPTORS. */
  interceptors: z.array(interceptorEntry, { error: 'a list of interceptors' }).optional(),
});

/** What a user may pass to `createChannel`. */
export type ChannelConfigInput = z.input<typeof channelSchema>;
type Parsed = z.output<typeof channelSchema>;
export type MulticastConfig = z.output<typeof multicastSchema> & { ttl: number };
export type StaticConfig = z.output<typeof staticSchema>;
/** DNS membership; `port` defaults to the receiver's (absent only for an SRV name with receiver.port 0). */
export type DnsConfig = z.output<typeof dnsSchema>;
export type DetectorConfig = z.output<typeof detectorSchema>;
export type FailureDetectorConfig = z.output<typeof failureDetectorSchema>;
export type MessageDispatchConfig = z.output<typeof messageDispatchSchema>;
export type ThroughputConfig = z.output<typeof throughputSchema>;
export type DomainFilterConfig = z.output<typeof domainFilterSchema>;
export type FragmentationConfig = z.output<typeof fragmentationSchema>;
export type StaticMembersConfig = z.output<typeof staticMembersSchema>;
export type BuiltinInterceptorConfig = z.output<typeof builtinInterceptor>;

/** The validated, defaulted, frozen channel configuration. */
export interface ChannelConfig extends Omit<Parsed, 'name' | 'sendOptions' | 'membership' | 'interceptors'> {
  readonly name: string;
  /** Parsed option bits. */
  readonly sendOptions: number;
  readonly membership: MulticastConfig | StaticConfig | DnsConfig;
  /** Built-in interceptor configs or custom interceptor objects, top first. */
  readonly interceptors: readonly (BuiltinInterceptorConfig | { name: string })[];
}

/**
 * Validates `input`, applies defaults and the security rule, and returns a frozen config.
 * @throws ConfigError listing every problem, each naming the key and the expected form.
 */
export function resolveChannelConfig(input: ChannelConfigInput = {}): ChannelConfig {
  return Problems.resolve((problems) => collectChannelConfig(input, prefixed(''), problems));
}

/**
 * {@link resolveChannelConfig} recording its problems in `problems` (keys named by `name`, e.g.
 * `cluster.…` in a node config) instead of throwing; undefined when `input` has a problem.
 * Each cross-field check runs when its own keys are valid.
 */
export function collectChannelConfig(input: unknown, name: KeyNamer, problems: Problems): ChannelConfig | undefined {
  const before = problems.list.length;
  const parsed: Parsed | undefined = collectConfig(channelSchema, input, name, problems);
  if (parsed === undefined) return undefined;
  const { ok, fail } = problems.scoped(name);
  const sendBits = ok('sendOptions')
    ? problems.run(() => parseSendOptions(parsed.sendOptions, name('sendOptions')))
    : undefined;
  const { sender, detector } = parsed;
  if (ok('sender.reconnectMinMs', 'sender.reconnectMaxMs') && sender.reconnectMaxMs < sender.reconnectMinMs)
    fail(
      'sender.reconnectMaxMs',
      `at least ${name('sender.reconnectMinMs')} (${sender.reconnectMinMs})`,
      sender.reconnectMaxMs,
    );
  if (ok('maxMessageBytes', 'maxFrameBytes') && parsed.maxMessageBytes < parsed.maxFrameBytes)
    fail('maxMessageBytes', `at least ${name('maxFrameBytes')} (${parsed.maxFrameBytes})`, parsed.maxMessageBytes);
  if (ok('detector.probeTimeoutMs', 'detector.probeIntervalMs') && detector.probeTimeoutMs >= detector.probeIntervalMs)
    fail(
      'detector.probeTimeoutMs',
      `below ${name('detector.probeIntervalMs')} (${detector.probeIntervalMs}): indirect probes need the rest of the interval`,
      detector.probeTimeoutMs,
    );
  const receiver = { ...parsed.receiver };
  if (receiver.address === 'auto') receiver.address = firstExternalIPv4() ?? '127.0.0.1';
  let membership: MulticastConfig | StaticConfig | DnsConfig;
  if (parsed.membership.type === 'multicast') {
    const m = parsed.membership;
    const ttl = m.ttl === 'auto' ? (isLoopback(m.interface) ? 0 : 1) : m.ttl;
    if (ok('membership.type', 'membership.dropTimeMs', 'membership.frequencyMs') && m.dropTimeMs <= m.frequencyMs)
      fail('membership.dropTimeMs', `greater than ${name('membership.frequencyMs')} (${m.frequencyMs})`, m.dropTimeMs);
    membership = { ...m, ttl };
  } else if (parsed.membership.type === 'dns') {
    membership = resolveDns(parsed.membership, receiver.port, ok, fail, name);
  } else {
    membership = parsed.membership;
  }
  const interceptors = parsed.interceptors ?? DEFAULT_INTERCEPTORS.map((type) => builtinInterceptor.parse({ type }));
  const config: ChannelConfig = {
    ...parsed,
    name: parsed.name ?? `node-${randomBytes(3).toString('hex')}`,
    sendOptions: sendBits ?? 0,
    receiver,
    membership,
    interceptors,
  };
  if (ok('clusterKey')) problems.run(() => normalizeClusterKeys(parsed.clusterKey, name('clusterKey')));
  if (ok('clusterKey', 'keyFile') && parsed.clusterKey !== undefined && parsed.keyFile !== undefined)
    fail('keyFile', `left unset when ${name('clusterKey')} is given (one source for the key)`);
  if (ok(...SECURITY_INPUTS)) checkSecurity(config, fail, name);
  if (problems.list.length > before) return undefined;
  return deepFreeze(config, CALLER_OWNED);
}

type Fail = (key: string, expected: string, received?: unknown) => void;

/** DNS membership's port: given, else the receiver's (every node listens on the same port). */
function resolveDns(
  m: z.output<typeof dnsSchema>,
  receiverPort: number,
  ok: (...keys: string[]) => boolean,
  fail: Fail,
  name: KeyNamer,
): DnsConfig {
  if (ok('membership.type', 'membership.dropTimeMs', 'membership.pingIntervalMs') && m.dropTimeMs <= m.pingIntervalMs)
    fail(
      'membership.dropTimeMs',
      `greater than ${name('membership.pingIntervalMs')} (${m.pingIntervalMs})`,
      m.dropTimeMs,
    );
  if (m.port !== undefined) return m;
  // An SRV name's records carry the ports: no default needed.
  if (m.name.startsWith('_')) return receiverPort === 0 ? m : { ...m, port: receiverPort };
  if (receiverPort === 0 && ok('membership.type', 'membership.name', 'membership.port', 'receiver.port'))
    fail(
      'membership.port',
      `given (the port the peers listen on): it defaults to ${name('receiver.port')}, which is 0 (any free port); or use an SRV name ("_service._tcp.…") whose records carry the ports`,
    );
  return { ...m, port: receiverPort };
}

/** 224.0.0.0 - 239.255.255.255: a socket bound there only gets that group's datagrams. */
function isMulticastGroup(address: string): boolean {
  const first = Number(address.split('.')[0]);
  return isIP(address) === 4 && first >= 224 && first <= 239;
}

/** Values the caller keeps owning: never frozen. */
const CALLER_OWNED = new Set(['payload']);

/**
 * The first setting that lets this node's cluster traffic leave the host, as [key, value], or
 * undefined when everything stays on loopback.
 */
export function exposure(config: ChannelConfig): [string, string] | undefined {
  if (!isLoopback(config.receiver.address)) return ['receiver.address', config.receiver.address];
  const m = config.membership;
  if (m.type === 'multicast' && !isLoopback(m.interface)) return ['membership.interface', m.interface];
  // A socket bound beyond loopback (e.g. 0.0.0.0) takes unicast heartbeats from other hosts.
  if (m.type === 'multicast' && m.bind !== undefined && !isLoopback(m.bind) && !isMulticastGroup(m.bind))
    return ['membership.bind', m.bind];
  if (m.type === 'static') {
    for (const peer of m.members) if (!isLoopback(parseHostPort(peer)!.host)) return ['membership.members', peer];
  }
  // The addresses a name resolves to are known only at run time, and may be anywhere.
  if (m.type === 'dns') return ['membership.name', m.name];
  for (const i of config.interceptors) {
    if ('type' in i && i.type === 'staticMembers') {
      for (const peer of i.members)
        if (!isLoopback(parseHostPort(peer)!.host)) return ['interceptors.staticMembers.members', peer];
    }
  }
  return undefined;
}

/** The keys the security rule reads: it runs only when they are all valid. */
const SECURITY_INPUTS = [
  'clusterKey',
  'keyFile',
  'insecure',
  'receiver.address',
  'membership.type',
  'membership.interface',
  'membership.bind',
  'membership.members',
  'membership.name',
  'interceptors',
];

/**
 * Secure by default: traffic that can leave this host must be authenticated with a key the
 * operator configured (clusterKey or an explicit keyFile) unless `insecure: true`. The automatic
 * per-user key file is for a cluster on one host only: it would differ on every host.
 */
function checkSecurity(config: ChannelConfig, fail: Fail, name: KeyNamer): void {
  if (config.clusterKey !== undefined || config.keyFile !== undefined || config.insecure) return;
  const exposed = exposure(config);
  if (exposed !== undefined) {
    const [key, value] = exposed;
    fail(
      'clusterKey',
      `set (a shared secret of at least 32 characters, the same on every node, e.g. \`openssl rand -base64 32\`), or ${name('keyFile')} (a file holding it, copied to every host), because ${name(key)} "${value}" reaches beyond loopback; ` +
        `or set ${name('insecure')}: true to accept unauthenticated cluster traffic on a trusted network`,
    );
  }
}
