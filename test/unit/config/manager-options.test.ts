/**
 * Choosing the session manager: `sessions.manager` / `sessions.backups` (node-wide and per app),
 * `--manager` / `--backups` (CLOWDER_MANAGER / CLOWDER_BACKUPS) on `clowder start`, and the
 * node's placement (`placement.host` / `placement.zone`, `--placement-host` / `--zone`). Every bad
 * value is a ConfigError naming the key or flag.
 */
import * as assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { afterEach, describe, it } from 'node:test';
import { nodeConfigFrom } from '../../../src/cli/options.js';
import { resolvePlacementConfig } from '../../../src/config/placement-config.js';
import { resolveSessionConfig } from '../../../src/config/session-config.js';
import { ConfigError } from '../../../src/core/errors.js';
import { createClusterNode } from '../../../src/node/cluster-node.js';
import { createSessions } from '../../../src/node/session-cluster.js';

const APPS = ['/app=./app.mjs'];

function configError(f: () => unknown): ConfigError {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.ok(err.message.includes(`"${err.key}"`), 'message names the key');
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

describe('sessions.manager and sessions.backups', () => {
  it('default to the DeltaManager with one backup', () => {
    const c = resolveSessionConfig({});
    assert.equal(c.manager, 'delta');
    assert.equal(c.backups, 1);
    const b = resolveSessionConfig({ manager: 'backup', backups: 0 });
    assert.equal(b.manager, 'backup');
    assert.equal(b.backups, 0);
    assert.equal(resolveSessionConfig({ backups: 64 }).backups, 64);
  });

  it('the BackupManager needs ownership "migrate" (one writer per session)', () => {
    const e = configError(() => resolveSessionConfig({ manager: 'backup', ownership: 'none' }, 'apps.1.sessions'));
    assert.equal(e.key, 'apps.1.sessions.ownership');
    assert.equal(resolveSessionConfig({ manager: 'delta', ownership: 'none' }).ownership, 'none');
  });

  it('bad values name the key', () => {
    const m = configError(() => resolveSessionConfig({ manager: 'lazy' as never }, 'apps.0.sessions'));
    assert.equal(m.key, 'apps.0.sessions.manager');
    assert.match(m.expected, /"delta" or "backup"/);
    for (const bad of [-1, 1.5, 65, '1', null]) {
      const e = configError(() => resolveSessionConfig({ backups: bad as never }));
      assert.equal(e.key, 'sessions.backups');
      assert.match(e.expected, /integer from 0 to 64/);
    }
  });

  it('a node validates them node-wide and per application, naming where they were written', () => {
    const app = (sessions: Record<string, unknown>) => ({ path: '/a', app: () => {}, sessions });
    const nodeWide = configError(() =>
      createClusterNode({ apps: [app({})], sessions: { backups: -1 }, cluster: { insecure: true } }),
    );
    assert.equal(nodeWide.key, 'sessions.backups');
    const perApp = configError(() => createClusterNode({ apps: [app({ manager: 'x' })], cluster: { insecure: true } }));
    assert.equal(perApp.key, 'apps.0.sessions.manager');
  });
});

describe('--manager and --backups', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const k of ['CLOWDER_MANAGER', 'CLOWDER_BACKUPS', 'CLOWDER_ZONE', 'CLOWDER_PLACEMENT_HOST'])
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
  });

  it('set sessions.manager and sessions.backups; the flag wins over the environment', async () => {
    const c = await nodeConfigFrom({ app: APPS, manager: 'backup', backups: '2' });
    assert.deepEqual(c.sessions, { manager: 'backup', backups: 2 });
    process.env.CLOWDER_MANAGER = 'backup';
    process.env.CLOWDER_BACKUPS = '3';
    assert.deepEqual((await nodeConfigFrom({ app: APPS })).sessions, { manager: 'backup', backups: 3 });
    assert.deepEqual((await nodeConfigFrom({ app: APPS, manager: 'delta', backups: '0' })).sessions, {
      manager: 'delta',
      backups: 0,
    });
  });

  it('bad values are errors naming the flag', async () => {
    for (const bad of ['-1', 'one', '1.5', '', '65', '0x1']) {
      const e = await configErrorAsync(() => nodeConfigFrom({ app: APPS, backups: bad }));
      assert.equal(e.key, '--backups', bad);
    }
    const m = await configErrorAsync(() => nodeConfigFrom({ app: APPS, manager: 'Backup' }));
    assert.equal(m.key, '--manager');
    process.env.CLOWDER_BACKUPS = 'two';
    assert.equal((await configErrorAsync(() => nodeConfigFrom({ app: APPS }))).key, '--backups');
  });

  it('--zone and --placement-host set the node placement', async () => {
    const c = await nodeConfigFrom({ app: APPS, zone: 'eu-1a', 'placement-host': 'rack4-m2' });
    assert.deepEqual(c.placement, { zone: 'eu-1a', host: 'rack4-m2' });
    process.env.CLOWDER_ZONE = 'z9';
    assert.deepEqual((await nodeConfigFrom({ app: APPS })).placement, { zone: 'z9' });
  });
});

describe('placement config', () => {
  it('defaults the host to the OS host name, no zone', () => {
    const p = resolvePlacementConfig();
    assert.equal(p.host, hostname().slice(0, 253) || 'localhost');
    assert.equal(p.zone, undefined);
    assert.deepEqual(resolvePlacementConfig({ host: 'm1', zone: 'z' }), { host: 'm1', zone: 'z' });
  });

  it('bad names and unknown keys name the key', () => {
    assert.equal(configError(() => resolvePlacementConfig({ host: '' })).key, 'placement.host');
    assert.equal(configError(() => resolvePlacementConfig({ host: 'a b' })).key, 'placement.host');
    assert.equal(configError(() => resolvePlacementConfig({ zone: 'z'.repeat(65) })).key, 'placement.zone');
    assert.throws(() => resolvePlacementConfig({ rack: 'r' } as never), /placement/);
    // A node and createSessions refuse a bad placement before anything starts.
    const node = configError(() =>
      createClusterNode({ apps: [{ path: '/', app: () => {} }], placement: { zone: 7 }, cluster: { insecure: true } }),
    );
    assert.equal(node.key, 'placement.zone');
    assert.equal(
      configError(() => createSessions({ channel: { insecure: true }, placement: { host: 'x y' } })).key,
      'placement.host',
    );
  });
});
