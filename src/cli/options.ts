/**
 * Command-line flags and CLOWDER_* environment variables, mapped onto the node configuration.
 * Flags win over the environment, which wins over the config file. Mistakes name the flag.
 */
import { readFile } from 'node:fs/promises';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { AdminToken } from '../config/admin-token.js';
import { Problems } from '../config/problems.js';
import { ProxyTrust, type TrustProxyInput } from '../config/trust-proxy.js';
import { ConfigError } from '../core/errors.js';

export type Flags = Record<string, string | boolean | string[] | undefined>;

/** Flags shared by `clowder start` and `clowder channel`. */
export const CLUSTER_FLAGS = {
  name: { type: 'string' },
  host: { type: 'string' },
  'cluster-host': { type: 'string' },
  'cluster-port': { type: 'string' },
  membership: { type: 'string' },
  members: { type: 'string' },
  'dns-name': { type: 'string' },
  'dns-server': { type: 'string', multiple: true },
  domain: { type: 'string' },
  'cluster-key-env': { type: 'string' },
  'key-file': { type: 'string' },
  insecure: { type: 'boolean' },
} as const;

/** Flags of `clowder start` (node:util parseArgs options; the deployment examples' test parses their args with these). */
export const START_FLAGS = {
  ...CLUSTER_FLAGS,
  config: { type: 'string' },
  app: { type: 'string', multiple: true },
  port: { type: 'string' },
  send: { type: 'string' },
  manager: { type: 'string' },
  backups: { type: 'string' },
  zone: { type: 'string' },
  'placement-host': { type: 'string' },
  'trust-proxy': { type: 'string' },
  'drain-ms': { type: 'string' },
  forward: { type: 'string' },
  json: { type: 'boolean' },
} as const;

function pick(flags: Flags, flag: string, env: string): string | undefined {
  const v = flags[flag];
  if (typeof v === 'string') return v;
  return process.env[env];
}

/**
 * A boolean flag, else its environment variable: `1`/`true`/`yes` or `0`/`false`/`no` (any case).
 * @throws ConfigError naming the variable for anything else.
 */
export function switchOn(flags: Flags, flag: string, env: string): boolean {
  if (flags[flag] === true) return true;
  const text = process.env[env];
  if (text === undefined || text === '') return false;
  const t = text.trim().toLowerCase();
  if (t === '1' || t === 'true' || t === 'yes') return true;
  if (t === '0' || t === 'false' || t === 'no') return false;
  throw new ConfigError(env, '1, true or yes (on), 0, false or no (off)', text);
}

/** A repeatable flag's values, else its environment variable split at commas; undefined when neither is set. */
function listOf(values: string | boolean | string[] | undefined, env: string): string[] | undefined {
  const list = Array.isArray(values) && values.length > 0 ? values : process.env[env]?.split(',');
  const out = list?.map((s) => s.trim()).filter(Boolean);
  return out !== undefined && out.length > 0 ? out : undefined;
}

function port(text: string, flag: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535)
    throw new ConfigError(flag, 'a port number from 0 to 65535', text);
  return Number(text);
}

/** Applies the cluster flags to a channel config object (mutates and returns it). */
export function applyClusterFlags(cluster: Record<string, unknown>, flags: Flags): Record<string, unknown> {
  const name = pick(flags, 'name', 'CLOWDER_NAME');
  if (name !== undefined) cluster.name = name;
  const domain = pick(flags, 'domain', 'CLOWDER_DOMAIN');
  if (domain !== undefined) cluster.domain = domain;
  const receiver = { ...((cluster.receiver as Record<string, unknown>) ?? {}) };
  const host = pick(flags, 'cluster-host', 'CLOWDER_CLUSTER_HOST') ?? pick(flags, 'host', 'CLOWDER_HOST');
  if (host !== undefined) receiver.address = host;
  const cport = pick(flags, 'cluster-port', 'CLOWDER_CLUSTER_PORT');
  if (cport !== undefined) receiver.port = port(cport, '--cluster-port');
  cluster.receiver = receiver;
  const kind = pick(flags, 'membership', 'CLOWDER_MEMBERSHIP');
  const members = pick(flags, 'members', 'CLOWDER_MEMBERS');
  const dnsName = pick(flags, 'dns-name', 'CLOWDER_DNS_NAME');
  const dnsServers = listOf(flags['dns-server'], 'CLOWDER_DNS_SERVERS');
  const given = cluster.membership as Record<string, unknown> | undefined;
  if (kind !== undefined || members !== undefined || dnsName !== undefined || dnsServers !== undefined) {
    const type =
      kind ??
      (members !== undefined
        ? 'static'
        : dnsName !== undefined || given?.type === 'dns' || dnsServers !== undefined
          ? 'dns'
          : 'multicast');
    if (type !== 'dns') {
      if (dnsName !== undefined) throw new ConfigError('--dns-name', 'used only with --membership dns');
      if (dnsServers !== undefined) throw new ConfigError('--dns-server', 'used only with --membership dns');
    }
    if (type === 'static') {
      const list = (members ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (list.length === 0)
        throw new ConfigError('--members', 'a comma-separated list of host:port (needed by --membership static)');
      cluster.membership = { ...((cluster.membership as object) ?? {}), type: 'static', members: list };
    } else if (type === 'multicast') {
      if (members !== undefined) throw new ConfigError('--members', 'used only with --membership static');
      cluster.membership = { type: 'multicast' };
    } else if (type === 'dns') {
      if (members !== undefined) throw new ConfigError('--members', 'used only with --membership static');
      // The config file's DNS settings (refreshMs, port, ...) stay unless a flag replaces them.
      const base = given?.type === 'dns' ? given : {};
      const name = dnsName ?? base.name;
      if (name === undefined)
        throw new ConfigError(
          '--dns-name',
          'the DNS name whose addresses are the members (needed by --membership dns), e.g. clowder.default.svc.cluster.local',
        );
      cluster.membership = { ...base, type: 'dns', name, ...(dnsServers !== undefined ? { servers: dnsServers } : {}) };
    } else {
      throw new ConfigError('--membership', '"multicast", "static" or "dns"', type);
    }
  }
  const keyVar = (flags['cluster-key-env'] as string | undefined) ?? 'CLOWDER_CLUSTER_KEY';
  const keyText = process.env[keyVar];
  if (keyText !== undefined) {
    // Comma-separated for a rotation (the first sends, all are accepted); keys are never echoed.
    const keys = keyText
      .split(',')
      .map((k) => k.trim())
      .filter(Boolean);
    cluster.clusterKey = keys.length === 1 ? keys[0] : keys;
  } else if (flags['cluster-key-env'] !== undefined)
    throw new ConfigError('--cluster-key-env', `the name of a set environment variable (${keyVar} is not set)`);
  const keyFile = pick(flags, 'key-file', 'CLOWDER_KEY_FILE');
  if (keyFile !== undefined) cluster.keyFile = resolve(keyFile);
  if (switchOn(flags, 'insecure', 'CLOWDER_INSECURE')) cluster.insecure = true;
  return cluster;
}

/** `--trust-proxy true|false|N|ADDRESS[/BITS],…` as a trustProxy value. @throws ConfigError naming the flag. */
function trustProxyOf(text: string): TrustProxyInput {
  const value = text === 'true' ? true : text === 'false' ? false : /^\d+$/.test(text) ? Number(text) : text;
  ProxyTrust.parse(value, '--trust-proxy');
  return value;
}

/** `value` when it is one of `choices` (undefined stays undefined); otherwise a problem of `key`, recorded. */
function oneOf<T extends string>(
  problems: Problems,
  key: string,
  value: string | undefined,
  choices: readonly T[],
): T | undefined {
  if (value === undefined || (choices as readonly string[]).includes(value)) return value as T | undefined;
  const quoted = choices.map((c) => `"${c}"`);
  problems.add({ key, expected: `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`, received: value });
  return undefined;
}

/** Reads a YAML or JSON config file. */
export async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      '--config',
      `a readable file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      file,
    );
  }
  try {
    const value = extname(file) === '.json' ? JSON.parse(text) : parseYaml(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw new Error('the top level must be a mapping');
    return value as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError('--config', `a YAML or JSON mapping (${(err as Error).message})`, file);
  }
}

/** `--app /path=MODULE` (repeatable) or CLOWDER_APPS="/a=mod1,/b=mod2". */
export function parseApps(values: string[] | undefined): { path: string; module: string }[] | undefined {
  const list = values && values.length > 0 ? values : process.env.CLOWDER_APPS?.split(',').filter(Boolean);
  if (list === undefined) return undefined;
  return list.map((v) => {
    const eq = v.indexOf('=');
    if (eq <= 0 || eq === v.length - 1)
      throw new ConfigError('--app', '/context-path=MODULE, e.g. --app /app=./examples/counter/app.mjs', v);
    return { path: v.slice(0, eq), module: v.slice(eq + 1) };
  });
}

/** Builds the node config from file, environment and flags. */
export async function nodeConfigFrom(flags: Flags): Promise<Record<string, unknown>> {
  const file = pick(flags, 'config', 'CLOWDER_CONFIG');
  const config: Record<string, unknown> = file ? await readConfigFile(file) : {};
  // A relative module path in the file means relative to the file (flags: to the working directory).
  if (file !== undefined && Array.isArray(config.apps)) {
    config.apps = config.apps.map((a: unknown) => {
      if (a === null || typeof a !== 'object') return a;
      const m = (a as { module?: unknown }).module;
      return typeof m === 'string' && (m.startsWith('./') || m.startsWith('../'))
        ? { ...a, module: resolve(dirname(file), m) }
        : a;
    });
  }
  const fileBlocks = {
    http: config.http,
    cluster: config.cluster,
    sessions: config.sessions,
    placement: config.placement,
  };
  const fileCluster = config.cluster as Record<string, unknown> | undefined;
  if (file !== undefined && typeof fileCluster?.keyFile === 'string' && !isAbsolute(fileCluster.keyFile))
    config.cluster = { ...fileCluster, keyFile: resolve(dirname(file), fileCluster.keyFile) };
  // Every bad flag is reported at once (one line each), not the first only.
  const problems = new Problems();
  const http = { ...((config.http as Record<string, unknown>) ?? {}) };
  const host = pick(flags, 'host', 'CLOWDER_HOST');
  if (host !== undefined) http.host = host;
  const p = pick(flags, 'port', 'CLOWDER_PORT');
  if (p !== undefined) problems.run(() => (http.port = port(p, '--port')));
  const drain = pick(flags, 'drain-ms', 'CLOWDER_DRAIN_MS');
  if (drain !== undefined) {
    if (!/^\d{1,6}$/.test(drain.trim()) || Number(drain) > 600_000)
      problems.add({ key: '--drain-ms', expected: 'milliseconds from 0 to 600000 (0 = no drain)', received: drain });
    else http.drainMs = Number(drain);
  }
  const forward = oneOf(problems, '--forward', pick(flags, 'forward', 'CLOWDER_FORWARD'), ['auto', 'always', 'off']);
  if (forward !== undefined) http.forward = forward;
  const trust = pick(flags, 'trust-proxy', 'CLOWDER_TRUST_PROXY');
  if (trust !== undefined) problems.run(() => (http.trustProxy = trustProxyOf(trust)));
  // A secret: from the environment (or the config file) only, never a flag (ps shows flags).
  const token = process.env.CLOWDER_ADMIN_TOKEN;
  if (token !== undefined)
    problems.run(() => {
      AdminToken.parse(token, 'CLOWDER_ADMIN_TOKEN');
      http.adminToken = token;
    });
  config.http = http;
  const apps = problems.run(() => parseApps(flags.app as string[] | undefined));
  if (apps) config.apps = apps;
  const cluster = { ...((config.cluster as Record<string, unknown>) ?? {}) };
  problems.run(() => (config.cluster = applyClusterFlags(cluster, flags)));
  const sessions: Record<string, unknown> = {};
  const send = oneOf(problems, '--send', pick(flags, 'send', 'CLOWDER_SEND'), ['async', 'sync']);
  if (send !== undefined) sessions.sendOptions = send;
  const manager = oneOf(problems, '--manager', pick(flags, 'manager', 'CLOWDER_MANAGER'), ['delta', 'backup']);
  if (manager !== undefined) sessions.manager = manager;
  const backups = pick(flags, 'backups', 'CLOWDER_BACKUPS');
  if (backups !== undefined) {
    if (!/^\d{1,2}$/.test(backups.trim()) || Number(backups) > 64)
      problems.add({
        key: '--backups',
        expected: 'an integer from 0 to 64 (copies of each session besides the primary)',
        received: backups,
      });
    else sessions.backups = Number(backups);
  }
  if (Object.keys(sessions).length > 0)
    config.sessions = { ...((config.sessions as Record<string, unknown>) ?? {}), ...sessions };
  const zone = pick(flags, 'zone', 'CLOWDER_ZONE');
  const placementHost = pick(flags, 'placement-host', 'CLOWDER_PLACEMENT_HOST');
  if (zone !== undefined || placementHost !== undefined) {
    const placement = { ...((config.placement as Record<string, unknown>) ?? {}) };
    if (zone !== undefined) placement.zone = zone;
    if (placementHost !== undefined) placement.host = placementHost;
    config.placement = placement;
  }
  if (config.apps === undefined && !problems.has('--app'))
    problems.add({
      key: '--app',
      expected: 'at least one application: --app /context-path=MODULE (or apps: in --config)',
    });
  problems.throwIfAny();
  // A block of the file that is no mapping (`http: 5`) stays as written, for the node config's
  // validation to report with the other problems (the flags merged above went into a copy). An
  // empty block (`cluster:` with every key commented out: null) is no block, as it always was.
  for (const [key, value] of Object.entries(fileBlocks))
    if (value != null && (typeof value !== 'object' || Array.isArray(value))) config[key] = value;
  return config;
}
