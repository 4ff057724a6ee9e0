/**
 * examples/kubernetes and examples/compose, checked without a cluster or a Docker engine:
 * - Kubernetes: every document against the API schemas of Kubernetes 1.33 (kubernetes-models:
 *   types, required fields, enums), and for unknown fields (a misspelt key is silently dropped by
 *   the API server) by type-checking it against the same models' TypeScript types;
 * - Compose: against the Compose Specification's JSON schema (as bundled by dclint), with ajv;
 *   HAProxy's configuration with `haproxy -c` where HAProxy is installed (.ci/run installs it);
 * - both: what the containers run is parsed by clowder's own CLI parser and config schemas with
 *   the environment the pod or container would have, and must agree with the ports, probes,
 *   Services, the secret, the balancer and the graceful stop's time budget (drain included);
 * - HAProxy (examples/haproxy and the compose balancer): its readiness checks take a draining node
 *   out well within the node's drain (`http.drainMs`).
 * The last suite breaks copies of the manifests and shows each check fails.
 */
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parseArgs, promisify } from 'node:util';
import { Ajv } from 'ajv';
import ts from 'typescript';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { nodeConfigFrom, START_FLAGS } from '../../src/cli/options.js';
import { resolveChannelConfig } from '../../src/config/channel-config.js';
import { resolveNodeConfig } from '../../src/config/node-config.js';
import { resolveSessionConfig } from '../../src/config/session-config.js';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');
const K8S = join(ROOT, 'examples/kubernetes');
const COMPOSE = join(ROOT, 'examples/compose');

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML
type Obj = any;
interface Doc {
  readonly file: string;
  readonly doc: Obj;
}

function kubernetesDocs(): Doc[] {
  return readdirSync(K8S)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(K8S, file), 'utf8'))
        .map((d) => d.toJS())
        .filter((doc) => doc !== null)
        .map((doc) => ({ file, doc })),
    );
}

const clone = <T>(v: T): T => structuredClone(v);

/** `kubernetes-models/<group>/<version>` for an apiVersion (core "v1" has no group). */
function modelModule(apiVersion: string): string {
  return `kubernetes-models/${apiVersion}`;
}

/** Schema errors: types, required fields, enums (kubernetes-models' validators). */
async function schemaErrors(docs: readonly Doc[]): Promise<string[]> {
  const errors: string[] = [];
  for (const { file, doc } of docs) {
    const where = `${file} ${doc?.kind}/${doc?.metadata?.name}`;
    let Model: { new (d: unknown): { validate(): void } } | undefined;
    try {
      Model = (await import(modelModule(String(doc.apiVersion))))[doc.kind];
    } catch {}
    if (Model === undefined) {
      errors.push(`${where}: no ${doc?.apiVersion} ${doc?.kind} in Kubernetes 1.33`);
      continue;
    }
    try {
      new Model(doc).validate();
    } catch (err) {
      errors.push(`${where}: ${(err as Error).message}`);
    }
  }
  return errors;
}

/**
 * Unknown (misspelt or misplaced) fields: each document as an object literal that must satisfy
 * its kind's TypeScript interface (generated from the same OpenAPI schema), where excess property
 * checks reach every nesting level.
 */
function unknownFieldErrors(docs: readonly Doc[]): string[] {
  const file = join(ROOT, 'test/deploy-examples.generated.ts');
  const lines: string[] = [];
  const owner: Doc[] = [];
  docs.forEach((d, i) => {
    lines.push(`import type { I${d.doc.kind} as T${i} } from '${modelModule(d.doc.apiVersion)}/${d.doc.kind}';`);
    owner.push(d);
  });
  const starts: number[] = [];
  docs.forEach((d, i) => {
    starts.push(lines.length);
    lines.push(...`export const doc${i} = ${JSON.stringify(d.doc, null, 1)} satisfies T${i};`.split('\n'));
  });
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) =>
    name === file ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === file ? source : readFile(name));
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    if (d.file?.fileName !== file || d.start === undefined) return `types: ${text}`;
    const line = d.file.getLineAndCharacterOfPosition(d.start).line;
    let i = starts.length - 1;
    while (i > 0 && starts[i]! > line) i--;
    const doc = line < (starts[0] ?? 0) ? undefined : owner[i];
    return `${doc ? `${doc.file} ${doc.doc.kind}/${doc.doc.metadata?.name}` : 'imports'}: ${text}`;
  });
}

/** Runs `fn` with exactly `env` as the CLOWDER_* environment (what nodeConfigFrom reads). */
async function withEnv<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('CLOWDER_')) delete process.env[k];
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

/** Whether this build has `membership.type: dns` (the dns branch); before it, the DNS part is reported, not checked. */
function dnsMembershipBuilt(): boolean {
  try {
    resolveChannelConfig({ membership: { type: 'dns', name: 'clowder.example' } } as never);
    return true;
  } catch {
    return false;
  }
}

interface StartCheck {
  readonly errors: string[];
  readonly node?: ReturnType<typeof resolveNodeConfig>;
  readonly channel?: ReturnType<typeof resolveChannelConfig>;
  /** The DNS name the environment gives, checked by the caller. */
  readonly dnsName?: string;
}

/**
 * What `clowder start` makes of a container's command line and environment: the flags through
 * clowder's own parseArgs options, then the node, channel and session config schemas.
 */
async function clowderStart(command: readonly string[], env: Record<string, string>): Promise<StartCheck> {
  const errors: string[] = [];
  if (command[0] !== 'node' || command[1] !== 'node_modules/clowder/dist/cli/main.js' || command[2] !== 'start')
    errors.push(
      `command must run "node node_modules/clowder/dist/cli/main.js start": ${command.slice(0, 3).join(' ')}`,
    );
  const dnsName = env.CLOWDER_DNS_NAME;
  const environment = { ...env };
  if (environment.CLOWDER_MEMBERSHIP === 'dns' && !dnsMembershipBuilt()) {
    delete environment.CLOWDER_MEMBERSHIP;
    delete environment.CLOWDER_DNS_NAME;
  }
  try {
    const { values } = parseArgs({ args: command.slice(3) as string[], options: START_FLAGS, strict: true });
    const config = await withEnv(environment, () => nodeConfigFrom(values));
    const node = resolveNodeConfig(config);
    const channel = resolveChannelConfig(node.cluster);
    resolveSessionConfig(node.sessions as never);
    return { errors, node, channel, dnsName };
  } catch (err) {
    errors.push(`clowder start refuses it: ${(err as Error).message}`);
    return { errors, dnsName };
  }
}

/** The URL a probe's `node -e "fetch('…')"` asks. */
function probeUrl(command: readonly string[] | undefined): string | undefined {
  return /fetch\('([^']+)'\)/.exec(command?.join(' ') ?? '')?.[1];
}

const FAKE = {
  podName: 'clowder-5d8f7c9b6d-x2x7q',
  namespace: 'default',
  podIP: '10.244.1.17',
  secret: 'k8s-example-cluster-key-0123456789abcdefghij',
  adminToken: '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
};

/** A container's environment as the kubelet makes it: downward API, secrets, $(VAR) references. */
function containerEnv(container: Obj, secrets: Map<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  const fields: Record<string, string> = {
    'metadata.name': FAKE.podName,
    'metadata.namespace': FAKE.namespace,
    'status.podIP': FAKE.podIP,
  };
  for (const e of container.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = String(e.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, v: string) => env[v] ?? all);
    } else if (e.valueFrom?.fieldRef) env[e.name] = fields[e.valueFrom.fieldRef.fieldPath] ?? '';
    else if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      env[e.name] = secrets.get(`${ref.name}/${ref.key}`) ?? `<no key ${ref.key} in secret ${ref.name}>`;
    }
  }
  return env;
}

/** The Secret the README tells to create: `kubectl create secret generic NAME --from-literal=KEY=…`. */
function readmeSecrets(readme: string): Map<string, string> {
  const secrets = new Map<string, string>();
  for (const m of readme.matchAll(/kubectl create secret generic (\S+)[^\n]*?--from-literal=([\w.-]+)=/g))
    secrets.set(`${m[1]}/${m[2]}`, FAKE.secret);
  return secrets;
}

/** Semantic consistency of examples/kubernetes: returns every problem found. */
async function checkKubernetes(docs: readonly Doc[], readme: string): Promise<string[]> {
  const errors: string[] = [];
  const of = (kind: string) => docs.filter((d) => d.doc.kind === kind).map((d) => d.doc);
  const [deployment] = of('Deployment');
  if (deployment === undefined) return ['no Deployment'];
  const pod = deployment.spec.template;
  const labels: Record<string, string> = pod.metadata?.labels ?? {};
  const selects = (sel: Record<string, string> | undefined, what: string) => {
    if (!sel || Object.keys(sel).length === 0 || !Object.entries(sel).every(([k, v]) => labels[k] === v))
      errors.push(`${what} does not select the Deployment's pods`);
  };
  selects(deployment.spec.selector?.matchLabels, 'Deployment.spec.selector');
  const container = pod.spec.containers[0];
  const port = (name: string): number | undefined => container.ports?.find((p: Obj) => p.name === name)?.containerPort;
  const secrets = readmeSecrets(readme);
  if (secrets.size === 0) errors.push('README.md: no `kubectl create secret generic NAME --from-literal=KEY=…` line');
  const start = await clowderStart([...container.command, ...container.args], containerEnv(container, secrets));
  errors.push(...start.errors);
  const { node, channel } = start;
  if (node && channel) {
    if (node.http.host !== '0.0.0.0') errors.push(`HTTP listens on ${node.http.host}, not every address of the pod`);
    if (node.http.port !== port('http')) errors.push(`HTTP port ${node.http.port} is not containerPort "http"`);
    if (channel.receiver.port !== port('cluster'))
      errors.push(`cluster port ${channel.receiver.port} is not containerPort "cluster"`);
    if (channel.receiver.address !== FAKE.podIP) errors.push('the cluster receiver does not advertise the pod IP');
    if (channel.name !== FAKE.podName) errors.push('the node name is not the pod name');
    if (channel.clusterKey === undefined || ![channel.clusterKey].flat().includes(FAKE.secret))
      errors.push("the cluster key is not the README's secret (secretKeyRef name/key, or the env var clowder reads)");
    const ready = `http://127.0.0.1:${node.http.port}${node.http.statusPath}/ready`;
    const stats = `http://127.0.0.1:${node.http.port}${node.http.statusPath}/stats`;
    for (const probe of ['startupProbe', 'readinessProbe'])
      if (probeUrl(container[probe]?.exec?.command) !== ready) errors.push(`${probe} does not ask ${ready}`);
    const live = probeUrl(container.livenessProbe?.exec?.command);
    if (live !== stats && live !== ready) errors.push(`livenessProbe does not ask ${stats}`);
    const sp = container.startupProbe;
    const sessions = resolveSessionConfig(node.sessions as never);
    if (sp && sp.periodSeconds * sp.failureThreshold < sessions.stateTransferTimeoutMs / 1000)
      errors.push('startupProbe gives up before a state transfer may end (stateTransferTimeoutMs)');
    const preStop = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
    const needed = preStop + (node.http.drainMs + node.http.shutdownTimeoutMs + channel.sender.timeoutMs) / 1000;
    if (!(pod.spec.terminationGracePeriodSeconds >= needed))
      errors.push(
        `terminationGracePeriodSeconds ${pod.spec.terminationGracePeriodSeconds} < ${needed} s of graceful stop`,
      );
    if (start.dnsName !== `clowder-cluster.${FAKE.namespace}.svc.cluster.local`)
      errors.push(`CLOWDER_DNS_NAME ${start.dnsName} is not the headless Service's name`);
    if (dnsMembershipBuilt()) {
      const m = channel.membership as { type: string; name?: string };
      if (m.type !== 'dns' || m.name !== start.dnsName) errors.push('membership is not DNS on the headless name');
    }
  }
  const headless = of('Service').find((s) => s.spec.clusterIP === 'None');
  if (!headless) errors.push('no headless Service (clusterIP: None)');
  else {
    selects(headless.spec.selector, 'the headless Service');
    if (headless.metadata.name !== 'clowder-cluster') errors.push('the headless Service is not clowder-cluster');
    if (headless.spec.publishNotReadyAddresses !== true)
      errors.push('the headless Service must publish not-ready pods (a starting node looks for peers first)');
    const p = headless.spec.ports?.[0];
    if (!p || p.port !== port('cluster') || p.targetPort !== 'cluster')
      errors.push('the headless Service does not expose the cluster port');
  }
  const traffic = of('Service').find((s) => s.spec.clusterIP !== 'None');
  if (!traffic) errors.push('no Service for traffic');
  else {
    selects(traffic.spec.selector, 'the traffic Service');
    if (!traffic.spec.ports?.some((p: Obj) => p.targetPort === 'http'))
      errors.push('the traffic Service misses "http"');
  }
  const [pdb] = of('PodDisruptionBudget');
  if (!pdb) errors.push('no PodDisruptionBudget');
  else selects(pdb.spec.selector?.matchLabels, 'the PodDisruptionBudget');
  for (const np of of('NetworkPolicy')) selects(np.spec.podSelector?.matchLabels, 'the NetworkPolicy');
  const psc = pod.spec.securityContext ?? {};
  const csc = container.securityContext ?? {};
  if (psc.runAsNonRoot !== true || csc.readOnlyRootFilesystem !== true || csc.allowPrivilegeEscalation !== false)
    errors.push('the pod must run as non-root, with a read-only root filesystem and no privilege escalation');
  if (!container.resources?.requests?.cpu || !container.resources?.requests?.memory)
    errors.push('no resource requests');
  return errors;
}

const composeSchema = JSON.parse(readFileSync(join(ROOT, 'node_modules/dclint/schemas/compose.schema.json'), 'utf8'));
// Draft-07, ajv's default; its "$schema" spells the meta-schema's URL in a way ajv does not know.
delete composeSchema.$schema;
const validateCompose = new Ajv({ allErrors: true, strict: false }).compile(composeSchema);

function composeSchemaErrors(doc: Obj): string[] {
  if (validateCompose(doc)) return [];
  return (validateCompose.errors ?? []).map(
    (e) => `compose.yaml ${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`,
  );
}

/** Seconds of a Compose duration such as "20s" or "1m30s". */
function seconds(d: string | undefined): number {
  let s = 0;
  for (const m of String(d ?? '').matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g))
    s += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return s;
}

/**
 * A HAProxy config's health checks against a node's drain: they must ask readiness over HTTP with
 * the admin token (a connect check sees a draining node up until it stops accepting), and take a
 * node out (`inter` until the first failed check, then `fall - 1` more `fastinter` apart) within
 * 2/3 of the drain, the rest being room for a loaded host.
 */
function haproxyDrainErrors(cfg: string, drainMs: number, statusPath: string): string[] {
  const errors: string[] = [];
  if (!new RegExp(`^\\s*option httpchk GET ${statusPath}/ready\\s*$`, 'm').test(cfg))
    errors.push(`haproxy.cfg: no "option httpchk GET ${statusPath}/ready" (a draining node would look up)`);
  if (!/^\s*http-check send hdr Authorization "Bearer \$\{CLOWDER_ADMIN_TOKEN\}"/m.test(cfg))
    errors.push('haproxy.cfg: the checks do not send the admin token');
  if (!/^\s*http-check expect status 200\s*$/m.test(cfg)) errors.push('haproxy.cfg: no "http-check expect status 200"');
  const line = /^\s*default-server\s+(.*)$/m.exec(cfg)?.[1] ?? '';
  const ms = (name: string, dflt: number) => {
    const m = new RegExp(`\\b${name}\\s+(\\d+)(ms|s)?\\b`).exec(line);
    return m ? Number(m[1]) * (m[2] === 'ms' ? 1 : 1000) : dflt;
  };
  const inter = ms('inter', 2000);
  const fastinter = ms('fastinter', inter);
  const fall = Number(/\bfall\s+(\d+)/.exec(line)?.[1] ?? 3);
  const detection = inter + (fall - 1) * fastinter;
  if (detection > (drainMs * 2) / 3)
    errors.push(
      `haproxy.cfg takes a draining node out after ${detection} ms: more than 2/3 of the ${drainMs} ms drain`,
    );
  return errors;
}

/** Semantic consistency of examples/compose: returns every problem found. */
async function checkCompose(doc: Obj, haproxyCfg: string): Promise<string[]> {
  const errors: string[] = [];
  const app = doc.services?.app;
  if (!app) return ['no service "app"'];
  const secret = app.secrets?.[0];
  const target = typeof secret === 'string' ? secret : (secret?.target ?? secret?.source);
  const source = typeof secret === 'string' ? secret : secret?.source;
  if (!doc.secrets?.[source]?.file) errors.push(`the secret ${source} is not a file secret of the project`);
  // Compose interpolates ${VAR…} from .env: the admin token the README puts there.
  const env: Record<string, string> = Object.fromEntries(
    Object.entries(app.environment ?? {}).map(([k, v]) => [
      k,
      String(v).replace(/\$\{[A-Z_]+(:?[?-][^}]*)?\}/g, FAKE.adminToken),
    ]),
  );
  const start = await clowderStart(app.command, env);
  errors.push(...start.errors);
  const { node, channel } = start;
  if (node && channel) {
    if (channel.keyFile !== `/run/secrets/${target}`)
      errors.push(`the key file is not the secret /run/secrets/${target}`);
    if (channel.receiver.port !== 4000) errors.push('the cluster port is not 4000');
    const ready = `http://127.0.0.1:${node.http.port}${node.http.statusPath}/ready`;
    if (probeUrl(app.healthcheck?.test) !== ready) errors.push(`the healthcheck does not ask ${ready}`);
    const needed = (node.http.drainMs + node.http.shutdownTimeoutMs + channel.sender.timeoutMs) / 1000;
    if (seconds(app.stop_grace_period) < needed) errors.push(`stop_grace_period < ${needed} s of graceful stop`);
    if (node.http.adminToken === undefined) errors.push("the replicas have no admin token (HAProxy's checks need it)");
    const token = /\$\{(CLOWDER_ADMIN_TOKEN)\b/;
    if (!token.test(String(doc.services?.balancer?.environment?.CLOWDER_ADMIN_TOKEN)))
      errors.push('the balancer does not get CLOWDER_ADMIN_TOKEN (its checks send it)');
    errors.push(...haproxyDrainErrors(haproxyCfg, node.http.drainMs, node.http.statusPath));
    const template = /^\s*server-template\s+(\S+)\s+(\d+)\s+([^:\s]+):(\d+)/m.exec(haproxyCfg);
    if (!template) errors.push('haproxy.cfg: no server-template');
    else {
      if (Number(template[4]) !== node.http.port)
        errors.push(`haproxy.cfg targets port ${template[4]}, not ${node.http.port}`);
      if (template[3] !== 'app') errors.push('haproxy.cfg does not resolve the service name "app"');
      if (Number(template[2]) < (app.deploy?.replicas ?? 1)) errors.push('haproxy.cfg has fewer servers than replicas');
    }
    if (
      !new RegExp(`stick on req\\.cook\\(${resolveSessionConfig(node.sessions as never).cookieName}\\)`).test(
        haproxyCfg,
      )
    )
      errors.push('haproxy.cfg does not stick on the session cookie');
  }
  if (start.dnsName !== 'app') errors.push('CLOWDER_DNS_NAME is not the service name');
  if (app.deploy?.replicas !== 3) errors.push('not 3 replicas');
  if (app.read_only !== true || !String(app.user ?? '').match(/^[1-9]/))
    errors.push('app must run non-root, read-only');
  const balancer = doc.services?.balancer;
  if (!balancer?.volumes?.some((v: string) => v.startsWith('./haproxy.cfg:')))
    errors.push('the balancer does not mount haproxy.cfg');
  return errors;
}

const readme = readFileSync(join(K8S, 'README.md'), 'utf8');
const compose = parseYaml(readFileSync(join(COMPOSE, 'compose.yaml'), 'utf8'));
const haproxyCfg = readFileSync(join(COMPOSE, 'haproxy.cfg'), 'utf8');
const haproxyExample = readFileSync(join(ROOT, 'examples/haproxy/haproxy.cfg'), 'utf8');

describe('examples/haproxy', () => {
  it('its readiness checks take a draining node out well within the default drain', () => {
    const node = resolveNodeConfig({ apps: [{ path: '/app', module: 'x' }] });
    assert.deepEqual(haproxyDrainErrors(haproxyExample, node.http.drainMs, node.http.statusPath), []);
  });
});

describe('examples/kubernetes', () => {
  const docs = kubernetesDocs();

  it('holds a Deployment, two Services, a PodDisruptionBudget and a NetworkPolicy', () => {
    assert.deepEqual(docs.map((d) => d.doc.kind).sort(), [
      'Deployment',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Service',
      'Service',
    ]);
  });

  it('every document is valid against the Kubernetes 1.33 API schemas', async () => {
    assert.deepEqual(await schemaErrors(docs), []);
  });

  it('no document has a field the API does not know', () => {
    assert.deepEqual(unknownFieldErrors(docs), []);
  });

  it('what the pods run agrees with clowder, the ports, the probes, the Services and the secret', async (t) => {
    if (!dnsMembershipBuilt())
      t.diagnostic(
        'membership.type "dns" is not in this build: CLOWDER_MEMBERSHIP/CLOWDER_DNS_NAME checked by name only',
      );
    assert.deepEqual(await checkKubernetes(docs, readme), []);
  });
});

describe('examples/compose', () => {
  it('compose.yaml is valid against the Compose Specification schema', () => {
    assert.deepEqual(composeSchemaErrors(compose), []);
  });

  it('what the replicas run agrees with clowder, the secret, the healthcheck and HAProxy', async () => {
    assert.deepEqual(await checkCompose(compose, haproxyCfg), []);
  });

  it('haproxy.cfg is valid for HAProxy (haproxy -c)', async (t) => {
    const haproxy = ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy'].find((p) => existsSync(p));
    if (haproxy === undefined) {
      t.skip('HAProxy is not installed here (.ci/run installs it)');
      return;
    }
    const { stdout, stderr } = await promisify(execFile)(haproxy, ['-c', '-f', join(COMPOSE, 'haproxy.cfg')]);
    assert.match(stdout + stderr, /Configuration file is valid/);
  });
});

describe('the example checks fail on broken manifests', () => {
  const docs = kubernetesDocs();
  const deploymentAt = docs.findIndex((d) => d.doc.kind === 'Deployment');
  /** A copy of the documents with the Deployment's first container changed by `edit`. */
  const withContainer = (edit: (c: Obj, d: Obj) => void): Doc[] => {
    const copy = docs.map((d) => ({ file: d.file, doc: clone(d.doc) }));
    const d = copy[deploymentAt]!.doc;
    edit(d.spec.template.spec.containers[0], d);
    return copy;
  };

  it('a misspelt field (readinesProbe)', () => {
    const broken = withContainer((c) => {
      c.readinesProbe = c.readinessProbe;
      delete c.readinessProbe;
    });
    assert.match(
      unknownFieldErrors(broken).join('\n'),
      /deployment\.yaml Deployment\/clowder: .*'"readinesProbe"' does not exist in type 'IContainer'/,
    );
  });

  it('a field of the wrong type (containerPort "8080")', async () => {
    const broken = withContainer((c) => {
      c.ports[0].containerPort = '8080';
    });
    assert.match((await schemaErrors(broken)).join('\n'), /containerPort must be integer/);
  });

  it('a missing required field (the container image name)', async () => {
    const broken = withContainer((c) => {
      delete c.name;
    });
    assert.match((await schemaErrors(broken)).join('\n'), /containers\/0 must have required property '?name/);
  });

  it('a flag clowder does not have (--cluster-prot)', async () => {
    const broken = withContainer((c) => {
      c.args = c.args.map((a: string) => (a === '--cluster-port' ? '--cluster-prot' : a));
    });
    assert.match((await checkKubernetes(broken, readme)).join('\n'), /clowder start refuses it: .*--cluster-prot/);
  });

  it('a probe on another path or port', async () => {
    const path = withContainer((c) => {
      c.readinessProbe.exec.command[2] = c.readinessProbe.exec.command[2].replace('/ready', '/readyz');
    });
    assert.match((await checkKubernetes(path, readme)).join('\n'), /readinessProbe does not ask/);
    const port = withContainer((c) => {
      c.ports[0].containerPort = 8081;
    });
    assert.match((await checkKubernetes(port, readme)).join('\n'), /HTTP port 8080 is not containerPort "http"/);
  });

  it('a secret key name other than the one created, or the key in a variable clowder does not read', async () => {
    const key = withContainer((c) => {
      c.env.find((e: Obj) => e.valueFrom?.secretKeyRef).valueFrom.secretKeyRef.key = 'clusterkey';
    });
    // The pod would start without the key (clowder refuses to listen beyond loopback without one).
    assert.match(
      (await checkKubernetes(key, readme)).join('\n'),
      /"cluster\.clusterKey" must be set|cluster key is not/,
    );
    const variable = withContainer((c) => {
      c.env.find((e: Obj) => e.valueFrom?.secretKeyRef).name = 'CLUSTER_KEY';
    });
    assert.match(
      (await checkKubernetes(variable, readme)).join('\n'),
      /"cluster\.clusterKey" must be set|cluster key is not/,
    );
  });

  it('HAProxy checks too slow for the drain, or not asking readiness with the token', () => {
    assert.match(
      haproxyDrainErrors(haproxyExample.replace('inter 500ms', 'inter 2s'), 2000, '/_clowder').join('\n'),
      /after 2100 ms: more than 2\/3 of the 2000 ms drain/,
    );
    assert.match(
      haproxyDrainErrors(haproxyExample.replace(/^\s*option httpchk.*$/m, ''), 2000, '/_clowder').join('\n'),
      /no "option httpchk GET \/_clowder\/ready"/,
    );
    assert.match(
      haproxyDrainErrors(haproxyCfg.replace(/^\s*http-check send.*$/m, ''), 2000, '/_clowder').join('\n'),
      /do not send the admin token/,
    );
  });

  it('a grace period shorter than the graceful stop', async () => {
    const broken = withContainer((_c, d) => {
      d.spec.template.spec.terminationGracePeriodSeconds = 10;
    });
    assert.match((await checkKubernetes(broken, readme)).join('\n'), /terminationGracePeriodSeconds 10 </);
  });

  it('compose: an unknown service key, a wrong key file, a balancer on another port', async () => {
    const unknown = clone(compose);
    unknown.services.app.replica = 3;
    assert.match(composeSchemaErrors(unknown).join('\n'), /additionalProperty":"replica"/);
    const keyFile = clone(compose);
    keyFile.services.app.command = keyFile.services.app.command.map((a: string) =>
      a === '/run/secrets/cluster_key' ? '/run/secrets/cluster.key' : a,
    );
    assert.match((await checkCompose(keyFile, haproxyCfg)).join('\n'), /key file is not the secret/);
    assert.match(
      (await checkCompose(compose, haproxyCfg.replace('app:8080', 'app:8081'))).join('\n'),
      /targets port 8081/,
    );
  });
});
