import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveSessionConfig, type SessionConfigInput } from '../../../src/config/session-config.js';
import { ConfigError, ErrorCode } from '../../../src/core/errors.js';

/** Resolves `input` expecting a ConfigError; returns it. */
function configError(input: unknown, prefix?: string): ConfigError {
  let caught: unknown;
  try {
    resolveSessionConfig(input as SessionConfigInput, prefix);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected ConfigError for ${JSON.stringify(input)}, got ${String(caught)}`);
  assert.equal(caught.code, ErrorCode.CONFIG);
  assert.ok(caught.message.includes(`"${caught.key}"`), 'message names the key');
  return caught;
}

describe('session config', () => {
  it('path filters are compiled once and left unset when empty', () => {
    const c = resolveSessionConfig({ replicationFilter: '\\.(css|js)$', readOnlyFilter: '^/app/read' });
    assert.ok(c.replicationFilter instanceof RegExp);
    assert.ok(c.readOnlyFilter?.test('/app/read'));
    assert.equal(c.readOnlyFilter?.test('/app/counter'), false);
    const none = resolveSessionConfig({ readOnlyFilter: '' });
    assert.equal(none.readOnlyFilter, undefined);
    assert.equal(none.replicationFilter, undefined);
    assert.ok(Object.isFrozen(c));
  });

  it('an invalid filter names its key and says why', () => {
    const ro = configError({ readOnlyFilter: '(' }, 'apps[0].sessions');
    assert.equal(ro.key, 'apps[0].sessions.readOnlyFilter');
    assert.match(ro.expected, /regular expression/);
    assert.equal(configError({ replicationFilter: '[' }).key, 'sessions.replicationFilter');
    assert.equal(configError({ readOnlyFilter: 7 }).key, 'sessions.readOnlyFilter');
  });

  it('ownershipTimeoutMs: 5000 by default, its own setting (not the transport timeout), bounded', () => {
    assert.equal(resolveSessionConfig({}).ownershipTimeoutMs, 5000);
    assert.equal(resolveSessionConfig({ ownershipTimeoutMs: 250 }).ownershipTimeoutMs, 250);
    for (const bad of [50, 600_001, 1.5, '3000']) {
      assert.equal(configError({ ownershipTimeoutMs: bad }).key, 'sessions.ownershipTimeoutMs');
    }
  });
});
