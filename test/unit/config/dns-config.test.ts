/**
 * `membership: { type: 'dns', … }`: defaults, the port taken from the receiver, errors naming
 * the dotted key, the cluster-key rule (DNS answers may be anywhere), and the `clowder start`
 * flags and CLOWDER_* variables that build it.
 */
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';
import { unlistedReceiverWarning } from '../../../src/channel/bind-check.js';
import { applyClusterFlags, nodeConfigFrom } from '../../../src/cli/options.js';
import { type ChannelConfigInput, resolveChannelConfig } from '../../../src/config/channel-config.js';
import { ConfigError } from '../../../src/core/errors.js';

const KEY = randomBytes(32).toString('base64');

function configError(input: unknown): ConfigError {
  try {
    resolveChannelConfig(input as ChannelConfigInput);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.ok(err.message.includes(`"${err.key}"`), 'the message names the key');
    return err;
  }
  assert.fail(`expected a ConfigError for ${JSON.stringify(input)}`);
}

describe('DNS membership config', () => {
  it('defaults: refresh 5 s, 256 addresses, pings as static, the port of the receiver, the system resolver', () => {
    const c = resolveChannelConfig({
      clusterKey: KEY,
      receiver: { port: 4100 },
      membership: { type: 'dns', name: 'clowder.default.svc.cluster.local' },
    });
    assert.deepEqual(c.membership, {
      type: 'dns',
      name: 'clowder.default.svc.cluster.local',
      port: 4100,
      refreshMs: 5000,
      maxMembers: 256,
      pingIntervalMs: 500,
      dropTimeMs: 3000,
    });
    assert.ok(Object.isFrozen(c.membership));
  });

  it('every option given', () => {
    const m = resolveChannelConfig({
      clusterKey: KEY,
      membership: {
        type: 'dns',
        name: '_clowder._tcp.clowder.default.svc.cluster.local.',
        port: 4555,
        servers: ['10.96.0.10', '127.0.0.1:5353', '::1', '[::1]:5353'],
        refreshMs: 200,
        maxMembers: 8,
        pingIntervalMs: 100,
        dropTimeMs: 1000,
      },
    }).membership;
    assert.equal(m.type, 'dns');
    if (m.type !== 'dns') return;
    assert.equal(m.port, 4555);
    assert.deepEqual(m.servers, ['10.96.0.10', '127.0.0.1:5353', '::1', '[::1]:5353']);
  });

  it('an SRV name needs no port (the records carry them), even with receiver.port 0', () => {
    const m = resolveChannelConfig({
      clusterKey: KEY,
      receiver: { port: 0 },
      membership: { type: 'dns', name: '_clowder._tcp.svc.test' },
    }).membership;
    assert.equal(m.type === 'dns' && m.port, undefined);
  });

  it('an A/AAAA name with receiver.port 0 and no port: membership.port is required', () => {
    const err = configError({ clusterKey: KEY, receiver: { port: 0 }, membership: { type: 'dns', name: 'svc.test' } });
    assert.equal(err.key, 'membership.port');
    assert.match(err.expected, /receiver\.port/);
  });

  it('errors name the dotted key and the expected form', () => {
    const cases: [unknown, string, RegExp][] = [
      [{ type: 'dns' }, 'membership.name', /DNS name/],
      [{ type: 'dns', name: 'bad name' }, 'membership.name', /DNS name/],
      [{ type: 'dns', name: `${'a'.repeat(64)}.test` }, 'membership.name', /DNS name/],
      [{ type: 'dns', name: '-x.test' }, 'membership.name', /DNS name/],
      [{ type: 'dns', name: 'svc', port: 0 }, 'membership.port', /port number/],
      [{ type: 'dns', name: 'svc', servers: [] }, 'membership.servers', /non-empty/],
      [{ type: 'dns', name: 'svc', servers: ['dns.example.com'] }, 'membership.servers.0', /not a host name/],
      [{ type: 'dns', name: 'svc', servers: ['10.0.0.1:99999'] }, 'membership.servers.0', /ip:port/],
      [{ type: 'dns', name: 'svc', servers: '10.0.0.1' }, 'membership.servers', /list/],
      [{ type: 'dns', name: 'svc', refreshMs: 10 }, 'membership.refreshMs', /100 to 600000/],
      [{ type: 'dns', name: 'svc', maxMembers: 0 }, 'membership.maxMembers', /1 to 10000/],
      [{ type: 'dns', name: 'svc', pingIntervalMs: 500, dropTimeMs: 400 }, 'membership.dropTimeMs', /pingIntervalMs/],
      [{ type: 'dns', name: 'svc', members: ['127.0.0.1:4000'] }, 'membership.members', /known option/],
    ];
    for (const [membership, key, expected] of cases) {
      const err = configError({ clusterKey: KEY, membership });
      assert.equal(err.key, key, JSON.stringify(membership));
      assert.match(err.expected, expected, JSON.stringify(membership));
    }
    assert.match(configError({ membership: { type: 'nope' } }).expected, /"dns"/);
  });

  it('a receiver that autoBind moved off the DNS port is warned about (the others look on that port)', () => {
    const config = (membership: Record<string, unknown>, port = 4000) =>
      resolveChannelConfig({
        clusterKey: KEY,
        receiver: { port },
        membership: { type: 'dns', ...membership },
      } as ChannelConfigInput);
    assert.equal(unlistedReceiverWarning(config({ name: 'svc' }), '10.0.0.1', 4000), undefined);
    const moved = unlistedReceiverWarning(config({ name: 'svc' }), '10.0.0.1', 4001);
    assert.match(moved ?? '', /receiver\.port 4000 was taken.*on port 4000.*autoBind: 1/);
    assert.match(unlistedReceiverWarning(config({ name: 'svc', port: 4500 }), '10.0.0.1', 4000) ?? '', /port 4500/);
    assert.equal(unlistedReceiverWarning(config({ name: '_c._tcp.svc' }, 0), '10.0.0.1', 39999), undefined, 'SRV');
  });

  it('needs a cluster key the operator gave (or insecure): the answers may be other hosts', () => {
    const err = configError({ membership: { type: 'dns', name: 'svc.test' } });
    assert.equal(err.key, 'clusterKey');
    assert.match(err.message, /membership\.name "svc\.test" reaches beyond loopback/);
    assert.doesNotThrow(() =>
      resolveChannelConfig({ keyFile: '/etc/clowder/key', membership: { type: 'dns', name: 'svc' } }),
    );
    assert.doesNotThrow(() => resolveChannelConfig({ insecure: true, membership: { type: 'dns', name: 'svc' } }));
  });
});

describe('clowder start: --membership dns --dns-name NAME [--dns-server IP[:PORT]]…', () => {
  const VARS = ['CLOWDER_MEMBERSHIP', 'CLOWDER_DNS_NAME', 'CLOWDER_DNS_SERVERS', 'CLOWDER_MEMBERS'] as const;
  const saved = Object.fromEntries(VARS.map((k) => [k, process.env[k]]));
  afterEach(() => {
    for (const k of VARS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
  const flagsError = (cluster: Record<string, unknown>, flags: Record<string, unknown>): ConfigError => {
    try {
      applyClusterFlags(cluster, flags as never);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err;
    }
    assert.fail('expected a ConfigError');
  };

  it('flags build the membership (--dns-server repeatable); --dns-name alone implies dns', () => {
    assert.deepEqual(
      applyClusterFlags(
        {},
        { membership: 'dns', 'dns-name': 'svc.test', 'dns-server': ['127.0.0.1:5353', '10.0.0.10'] },
      ).membership,
      { type: 'dns', name: 'svc.test', servers: ['127.0.0.1:5353', '10.0.0.10'] },
    );
    assert.deepEqual(applyClusterFlags({}, { 'dns-name': 'svc.test' }).membership, { type: 'dns', name: 'svc.test' });
  });

  it('CLOWDER_MEMBERSHIP, CLOWDER_DNS_NAME and CLOWDER_DNS_SERVERS (comma-separated); flags win', () => {
    process.env.CLOWDER_MEMBERSHIP = 'dns';
    process.env.CLOWDER_DNS_NAME = 'env.test';
    process.env.CLOWDER_DNS_SERVERS = '127.0.0.1:5353, 10.0.0.10';
    assert.deepEqual(applyClusterFlags({}, {}).membership, {
      type: 'dns',
      name: 'env.test',
      servers: ['127.0.0.1:5353', '10.0.0.10'],
    });
    assert.deepEqual(applyClusterFlags({}, { 'dns-name': 'flag.test', 'dns-server': ['10.1.1.1'] }).membership, {
      type: 'dns',
      name: 'flag.test',
      servers: ['10.1.1.1'],
    });
  });

  it("a config file's DNS settings stay; flags replace the name and servers", () => {
    const file = { membership: { type: 'dns', name: 'file.test', refreshMs: 1000, port: 4555 } };
    assert.deepEqual(applyClusterFlags({ ...file }, { 'dns-server': ['10.0.0.10'] }).membership, {
      type: 'dns',
      name: 'file.test',
      refreshMs: 1000,
      port: 4555,
      servers: ['10.0.0.10'],
    });
    assert.deepEqual(applyClusterFlags({ ...file }, { 'dns-name': 'flag.test' }).membership, {
      type: 'dns',
      name: 'flag.test',
      refreshMs: 1000,
      port: 4555,
    });
  });

  it('mistakes name the flag', () => {
    assert.equal(flagsError({}, { membership: 'dns' }).key, '--dns-name');
    assert.equal(flagsError({}, { 'dns-server': ['10.0.0.10'] }).key, '--dns-name');
    assert.equal(
      flagsError({}, { membership: 'static', members: '127.0.0.1:4000', 'dns-name': 'x' }).key,
      '--dns-name',
    );
    assert.equal(flagsError({}, { membership: 'multicast', 'dns-server': ['10.0.0.10'] }).key, '--dns-server');
    assert.equal(flagsError({}, { membership: 'dns', 'dns-name': 'x', members: '127.0.0.1:4000' }).key, '--members');
    assert.match(flagsError({}, { membership: 'gossip' }).expected, /"dns"/);
  });

  it('the node config from flags validates as a channel config (a bad server is named)', async () => {
    const c = await nodeConfigFrom({
      app: ['/app=./app.mjs'],
      'dns-name': 'svc.test',
      'dns-server': ['dns.example.com'],
    });
    const err = configError({ ...(c.cluster as object), clusterKey: KEY });
    assert.equal(err.key, 'membership.servers.0');
  });
});
