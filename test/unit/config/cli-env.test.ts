/**
 * "Every flag of `clowder start` has a CLOWDER_* environment variable" (README): each flag that
 * `clowder help` lists for `clowder start` names its variable there, and the variable builds the
 * same node configuration as the flag. A flag added without a variable fails here.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Flags, nodeConfigFrom, switchOn } from '../../../src/cli/options.js';
import { resolveNodeConfig } from '../../../src/config/node-config.js';
import { ConfigError } from '../../../src/core/errors.js';

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const APP = '/app=./examples/counter/app.mjs';
const TOKEN = 'c2VjcmV0LWFkbWluLXRva2VuLWZvci10ZXN0cy0wMTIzNDU2Nzg5';
const CONFIG_FILE = join(mkdtempSync(join(tmpdir(), 'clowder-env-')), 'node.yaml');
writeFileSync(CONFIG_FILE, 'cluster: { name: fromfile }\nsessions: { maxInactiveInterval: 60 }\n');

/**
 * The `clowder start` section of `clowder help`: flag → the first env variable its entry (its
 * line and the indented lines under it) names.
 */
function startFlagsInHelp(): Map<string, string | undefined> {
  const help = execFileSync(process.execPath, [CLI, 'help'], { encoding: 'utf8' });
  const section = help.slice(help.indexOf('clowder start'), help.indexOf('clowder balancer'));
  const flags = new Map<string, string | undefined>();
  let current: string | undefined;
  for (const line of section.split('\n')) {
    const flag = /^\s+--([a-z-]+)/.exec(line)?.[1];
    if (flag !== undefined) {
      current = flag;
      flags.set(flag, undefined);
    }
    const env = /env (CLOWDER_[A-Z_]+)/.exec(line)?.[1];
    if (current !== undefined && env !== undefined && flags.get(current) === undefined) flags.set(current, env);
  }
  return flags;
}

/**
 * Each flag of `clowder start`: its variable, and a value given both ways. `--app` is given as a
 * flag in every case (a node needs one), so its own case compares another app.
 */
const CASES: Record<string, { env: string; flag: Flags[string]; text: string; with?: Flags }> = {
  config: { env: 'CLOWDER_CONFIG', flag: CONFIG_FILE, text: CONFIG_FILE },
  app: { env: 'CLOWDER_APPS', flag: ['/x=./x.mjs'], text: '/x=./x.mjs' },
  name: { env: 'CLOWDER_NAME', flag: 'n1', text: 'n1' },
  host: { env: 'CLOWDER_HOST', flag: '127.0.0.2', text: '127.0.0.2' },
  port: { env: 'CLOWDER_PORT', flag: '8181', text: '8181' },
  'cluster-host': { env: 'CLOWDER_CLUSTER_HOST', flag: '127.0.0.3', text: '127.0.0.3' },
  'cluster-port': { env: 'CLOWDER_CLUSTER_PORT', flag: '4111', text: '4111' },
  membership: { env: 'CLOWDER_MEMBERSHIP', flag: 'multicast', text: 'multicast' },
  members: { env: 'CLOWDER_MEMBERS', flag: '127.0.0.1:4111,127.0.0.1:4112', text: '127.0.0.1:4111,127.0.0.1:4112' },
  send: { env: 'CLOWDER_SEND', flag: 'sync', text: 'sync' },
  manager: { env: 'CLOWDER_MANAGER', flag: 'backup', text: 'backup' },
  backups: { env: 'CLOWDER_BACKUPS', flag: '2', text: '2' },
  zone: { env: 'CLOWDER_ZONE', flag: 'z1', text: 'z1' },
  'placement-host': { env: 'CLOWDER_PLACEMENT_HOST', flag: 'm1', text: 'm1' },
  domain: { env: 'CLOWDER_DOMAIN', flag: 'd1', text: 'd1' },
  'key-file': { env: 'CLOWDER_KEY_FILE', flag: '/tmp/k', text: '/tmp/k' },
  insecure: { env: 'CLOWDER_INSECURE', flag: true, text: '1' },
  'trust-proxy': { env: 'CLOWDER_TRUST_PROXY', flag: 'loopback', text: 'loopback' },
  json: { env: 'CLOWDER_JSON', flag: true, text: 'yes' },
  'drain-ms': { env: 'CLOWDER_DRAIN_MS', flag: '500', text: '500' },
  forward: { env: 'CLOWDER_FORWARD', flag: 'always', text: 'always' },
  'dns-name': { env: 'CLOWDER_DNS_NAME', flag: 'clowder.example.test', text: 'clowder.example.test' },
  'dns-server': {
    env: 'CLOWDER_DNS_SERVERS',
    flag: ['127.0.0.1:5353'],
    text: '127.0.0.1:5353',
    with: { 'dns-name': 'clowder.example.test' }, // a server needs a name to ask for
  },
};

/** Flags whose value is itself about the environment (no variable of their own). */
const ABOUT_THE_ENVIRONMENT = new Set(['cluster-key-env']);

describe('`clowder start`: every flag has a CLOWDER_* environment variable', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  });

  it('`clowder help` names a variable for every flag of `clowder start`, the one the code reads', () => {
    const listed = startFlagsInHelp();
    assert.ok(listed.size >= 15, `found the flags (${[...listed.keys()].join(', ')})`);
    for (const [flag, env] of listed) {
      if (ABOUT_THE_ENVIRONMENT.has(flag)) continue;
      const c = CASES[flag];
      assert.ok(c, `--${flag} is listed by clowder help but has no case here: give it a CLOWDER_* variable`);
      assert.equal(env, c.env, `--${flag}: the variable clowder help names`);
    }
    for (const flag of Object.keys(CASES)) assert.ok(listed.has(flag), `--${flag} is in clowder help`);
  });

  for (const [flag, c] of Object.entries(CASES)) {
    it(`${c.env}=${c.text} builds what --${flag} builds`, async () => {
      for (const k of Object.keys(process.env)) if (k.startsWith('CLOWDER_')) delete process.env[k];
      const base: Flags = { ...(flag === 'app' ? {} : { app: [APP] }), ...c.with };
      if (flag === 'json') {
        // --json is read by `clowder start` itself (the ready line), through the same switch.
        assert.equal(switchOn({}, 'json', c.env), false);
        process.env[c.env] = c.text;
        assert.equal(switchOn({}, 'json', c.env), switchOn({ json: true }, 'json', c.env));
        assert.equal(switchOn({}, 'json', c.env), true);
        return;
      }
      const withoutEither = await nodeConfigFrom(flag === 'app' ? { app: [APP] } : base);
      const byFlag = await nodeConfigFrom({ ...base, [flag]: c.flag });
      process.env[c.env] = c.text;
      const byEnv = await nodeConfigFrom(base);
      assert.deepEqual(byEnv, byFlag, `${c.env} and --${flag} build the same configuration`);
      assert.notDeepEqual(byEnv, withoutEither, `${c.env} changes the configuration`);
    });
  }
});

describe('precedence: flags over variables over the config file', () => {
  it('--name beats CLOWDER_NAME, which beats the file', async () => {
    for (const k of Object.keys(process.env)) if (k.startsWith('CLOWDER_')) delete process.env[k];
    const name = async (flags: Flags) =>
      ((await nodeConfigFrom({ app: [APP], config: CONFIG_FILE, ...flags })).cluster as { name?: string }).name;
    try {
      assert.equal(await name({}), 'fromfile');
      process.env.CLOWDER_NAME = 'fromenv';
      assert.equal(await name({}), 'fromenv');
      assert.equal(await name({ name: 'fromflag' }), 'fromflag');
    } finally {
      delete process.env.CLOWDER_NAME;
    }
  });
});

describe('the token of the status endpoints is a variable only', () => {
  it('CLOWDER_ADMIN_TOKEN sets http.adminToken (no flag: a secret on a command line shows in ps)', async () => {
    for (const k of Object.keys(process.env)) if (k.startsWith('CLOWDER_')) delete process.env[k];
    process.env.CLOWDER_ADMIN_TOKEN = TOKEN;
    try {
      const config = await nodeConfigFrom({ app: [APP] });
      assert.equal((config.http as { adminToken?: string }).adminToken, TOKEN);
    } finally {
      delete process.env.CLOWDER_ADMIN_TOKEN;
    }
  });
});

describe('a config file block that is no mapping', () => {
  it('is kept as written (reported with the other problems); an empty block is no block', async () => {
    for (const k of Object.keys(process.env)) if (k.startsWith('CLOWDER_')) delete process.env[k];
    const file = join(mkdtempSync(join(tmpdir(), 'clowder-blocks-')), 'node.yaml');
    writeFileSync(file, 'http: 5\ncluster:\nsessions: [1]\nplacement: x\n');
    const config = await nodeConfigFrom({ app: [APP], config: file, port: '0', 'cluster-port': '0' });
    assert.deepEqual([config.http, config.sessions, config.placement], [5, [1], 'x']);
    assert.deepEqual(config.cluster, { receiver: { port: 0 } }, 'an empty cluster: block takes the flags');
    let caught: unknown;
    try {
      resolveNodeConfig(config);
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof ConfigError);
    assert.deepEqual(
      caught.problems.map((p) => p.key),
      ['http', 'sessions', 'placement'],
    );
  });
});
