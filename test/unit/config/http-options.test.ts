/**
 * The HTTP hardening options: `trustProxy` (node `http.trustProxy`, library `sessions.trustProxy`,
 * `--trust-proxy`) in every accepted form and with clear errors; `http.adminToken` (or
 * CLOWDER_ADMIN_TOKEN): length and characters checked, never quoted in an error, never shown
 * in JSON or util.inspect.
 */
import * as assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { nodeConfigFrom } from '../../../src/cli/options.js';
import { AdminToken } from '../../../src/config/admin-token.js';
import { resolveNodeConfig } from '../../../src/config/node-config.js';
import { resolveSessionConfig } from '../../../src/config/session-config.js';
import { ProxyTrust } from '../../../src/config/trust-proxy.js';
import { ConfigError } from '../../../src/core/errors.js';

const TOKEN = 'c2VjcmV0LWFkbWluLXRva2VuLWZvci10ZXN0cy0wMTIzNDU2Nzg5';
const APPS = [{ path: '/app', module: './app.mjs' }];

function configError(f: () => unknown): ConfigError {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail('expected a ConfigError');
}

async function configErrorAsync(f: () => Promise<unknown>): Promise<ConfigError> {
  try {
    await f();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail('expected a ConfigError');
}

describe('trustProxy', () => {
  it('false (default), 0: no peer is trusted; true and any hop count ≥ 1: every peer', () => {
    for (const v of [undefined, false, 0]) {
      const t = ProxyTrust.parse(v, 'k');
      assert.equal(t.trustsPeer('127.0.0.1'), false, String(v));
    }
    for (const v of [true, 1, 3]) assert.equal(ProxyTrust.parse(v, 'k').trustsPeer('203.0.113.9'), true, String(v));
  });

  it('addresses, CIDR ranges and named ranges, as a list or a comma-separated string; IPv4-mapped peers match', () => {
    const t = ProxyTrust.parse(['10.0.0.0/8', '192.0.2.7', 'fd00::/8', 'loopback'], 'k');
    for (const a of ['10.1.2.3', '::ffff:10.1.2.3', '192.0.2.7', 'fd00::1', '127.0.0.1', '::1', '::ffff:127.0.0.1'])
      assert.equal(t.trustsPeer(a), true, a);
    for (const a of ['11.0.0.1', '192.0.2.8', 'fe80::1', '203.0.113.9', '', undefined, 'localhost'])
      assert.equal(t.trustsPeer(a), false, String(a));
    const s = ProxyTrust.parse(' uniquelocal , 198.51.100.0/24', 'k');
    assert.equal(s.trustsPeer('172.16.5.5'), true);
    assert.equal(s.trustsPeer('198.51.100.200'), true);
    assert.equal(s.trustsPeer('127.0.0.1'), false);
    assert.equal(ProxyTrust.parse('linklocal', 'k').trustsPeer('169.254.1.1'), true);
    assert.deepEqual(JSON.parse(JSON.stringify({ t: s })), { t: ['uniquelocal', '198.51.100.0/24'] });
  });

  it('anything else is refused, naming the key and the accepted forms', () => {
    for (const [v, key] of [
      [-1, 'http.trustProxy'],
      [1.5, 'http.trustProxy'],
      [256, 'http.trustProxy'],
      ['nonsense', 'http.trustProxy'],
      ['', 'http.trustProxy'],
      ['10.0.0.0/33', 'http.trustProxy'],
      [['10.0.0.1', '::1/129'], 'http.trustProxy.1'],
      [[5], 'http.trustProxy.0'],
      [[], 'http.trustProxy'],
      [{ hops: 1 }, 'http.trustProxy'],
    ] as const) {
      const err = configError(() => resolveNodeConfig({ apps: APPS, http: { trustProxy: v } }));
      assert.equal(err.key, key, JSON.stringify(v));
    }
    const err = configError(() => resolveSessionConfig({ trustProxy: 'x' as never }));
    assert.equal(err.key, 'sessions.trustProxy');
    assert.match(err.message, /IP address|CIDR/);
  });

  it('a node sets it node-wide (http.trustProxy), not per application', () => {
    const node = resolveNodeConfig({ apps: APPS, http: { trustProxy: 'loopback' } });
    assert.equal(node.http.trustProxy.trustsPeer('127.0.0.1'), true);
    assert.equal(resolveNodeConfig({ apps: APPS }).http.trustProxy.trustsPeer('127.0.0.1'), false);
    assert.equal(
      configError(() => resolveNodeConfig({ apps: APPS, sessions: { trustProxy: true } })).key,
      'sessions.trustProxy',
    );
    const err = configError(() =>
      resolveNodeConfig({ apps: [...APPS, { path: '/b', module: 'b', sessions: { trustProxy: 1 } }] }),
    );
    assert.equal(err.key, 'apps.1.sessions.trustProxy');
    assert.match(err.message, /http\.trustProxy/);
  });

  it('library mode: sessions.trustProxy; the session config stays frozen', () => {
    const c = resolveSessionConfig({ trustProxy: ['127.0.0.1'] });
    assert.equal(c.trustProxy.trustsPeer('127.0.0.1'), true);
    assert.equal(resolveSessionConfig({}).trustProxy.trustsPeer('127.0.0.1'), false);
    assert.ok(Object.isFrozen(c));
  });
});

describe('adminToken', () => {
  it('a token of 32+ b64token characters is accepted, and matches only itself', () => {
    const t = resolveNodeConfig({ apps: APPS, http: { adminToken: TOKEN } }).http.adminToken!;
    assert.ok(t instanceof AdminToken);
    assert.equal(t.matches(TOKEN), true);
    // Any presented length is hashed first: no throw from comparing buffers of unequal length.
    for (const wrong of ['', 'x', TOKEN.slice(0, -1), `${TOKEN}=`, TOKEN.toLowerCase(), 'a'.repeat(10_000)])
      assert.equal(t.matches(wrong), false, wrong.slice(0, 10));
    assert.equal(resolveNodeConfig({ apps: APPS }).http.adminToken, undefined);
  });

  it('too short, too long, odd characters or not a string: refused without quoting the value', () => {
    for (const bad of [
      TOKEN.slice(0, 31),
      `${TOKEN} x`,
      `${TOKEN}"`,
      'é'.repeat(40),
      'a'.repeat(1025),
      12345678901234567890n,
    ]) {
      const err = configError(() => resolveNodeConfig({ apps: APPS, http: { adminToken: bad } }));
      assert.equal(err.key, 'http.adminToken');
      assert.match(err.message, /at least|32/);
      assert.ok(!err.message.includes(String(bad).slice(0, 20)), 'the value is not in the message');
    }
  });

  it('never shows in JSON, util.inspect or the node config', () => {
    const config = resolveNodeConfig({ apps: APPS, http: { adminToken: TOKEN } });
    assert.ok(!JSON.stringify(config).includes(TOKEN));
    assert.ok(!inspect(config, { depth: 10 }).includes(TOKEN));
    assert.ok(!inspect(config.http.adminToken, { showHidden: true }).includes(TOKEN));
  });
});

describe('clowder start flags and environment', () => {
  const saved = { token: process.env.CLOWDER_ADMIN_TOKEN, trust: process.env.CLOWDER_TRUST_PROXY };
  afterEach(() => {
    for (const [k, v] of [
      ['CLOWDER_ADMIN_TOKEN', saved.token],
      ['CLOWDER_TRUST_PROXY', saved.trust],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  const app = ['/app=./app.mjs'];

  it('--trust-proxy and CLOWDER_TRUST_PROXY: true, false, a hop count or a list', async () => {
    for (const [text, value] of [
      ['true', true],
      ['false', false],
      ['2', 2],
      ['loopback,10.0.0.0/8', 'loopback,10.0.0.0/8'],
    ] as const) {
      const c = await nodeConfigFrom({ app, 'trust-proxy': text });
      assert.deepEqual((c.http as { trustProxy: unknown }).trustProxy, value);
    }
    process.env.CLOWDER_TRUST_PROXY = '1';
    assert.equal(((await nodeConfigFrom({ app })).http as { trustProxy: unknown }).trustProxy, 1);
    const err = await configErrorAsync(() => nodeConfigFrom({ app, 'trust-proxy': 'proxy.local' }));
    assert.equal(err.key, '--trust-proxy');
  });

  it('CLOWDER_ADMIN_TOKEN sets http.adminToken; a bad one is named, not quoted', async () => {
    process.env.CLOWDER_ADMIN_TOKEN = TOKEN;
    const c = await nodeConfigFrom({ app });
    assert.equal(resolveNodeConfig(c).http.adminToken?.matches(TOKEN), true);
    process.env.CLOWDER_ADMIN_TOKEN = 'too-short-secret';
    const err = await configErrorAsync(() => nodeConfigFrom({ app }));
    assert.equal(err.key, 'CLOWDER_ADMIN_TOKEN');
    assert.ok(!err.message.includes('too-short-secret'));
  });
});
