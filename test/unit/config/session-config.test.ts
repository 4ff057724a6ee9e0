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

  it('express-session options: defaults, and sessions.cookie resolved with cookieSecure/cookieSameSite', () => {
    const d = resolveSessionConfig({ contextPath: '/app' });
    assert.equal(d.saveUninitialized, false);
    assert.equal(d.rolling, false);
    assert.deepEqual(d.cookie, {
      maxAge: null,
      domain: undefined,
      path: '/app',
      sameSite: 'Lax',
      secure: 'auto',
      httpOnly: true,
    });
    const c = resolveSessionConfig({
      resave: true,
      rolling: true,
      saveUninitialized: true,
      cookie: { maxAge: 60_000, domain: 'example.com', path: '/', sameSite: 'strict', secure: true, httpOnly: false },
    });
    assert.deepEqual(c.cookie, {
      maxAge: 60_000,
      domain: 'example.com',
      path: '/',
      sameSite: 'Strict',
      secure: true,
      httpOnly: false,
    });
    assert.equal(c.cookieSecure, true);
    assert.equal(c.cookieSameSite, 'Strict');
    assert.equal(resolveSessionConfig({ cookie: { sameSite: false } }).cookie.sameSite, undefined);
    assert.equal(resolveSessionConfig({ cookie: { sameSite: true } }).cookie.sameSite, 'Strict');
    assert.equal(resolveSessionConfig({ cookieSameSite: 'None', cookieSecure: false }).cookie.sameSite, 'None');
    assert.ok(Object.isFrozen(c.cookie));
  });

  it('sessions.cookie refuses what could break the Set-Cookie header, naming the key', () => {
    assert.equal(configError({ cookie: { domain: 'a.com; Domain=evil.com' } }).key, 'sessions.cookie.domain');
    assert.equal(configError({ cookie: { path: '/a;b' } }).key, 'sessions.cookie.path');
    assert.equal(configError({ cookie: { path: 'relative' } }).key, 'sessions.cookie.path');
    assert.equal(configError({ cookie: { maxAge: -1 } }).key, 'sessions.cookie.maxAge');
    assert.equal(configError({ cookie: { maxAge: 401 * 86_400_000 } }).key, 'sessions.cookie.maxAge');
    assert.equal(configError({ cookie: { sameSite: 'sometimes' } }).key, 'sessions.cookie.sameSite');
    assert.equal(configError({ cookie: { expires: 5 } }).key, 'sessions.cookie.expires');
    assert.equal(configError({ cookie: { secure: true }, cookieSecure: false }).key, 'sessions.cookieSecure');
    assert.equal(configError({ cookie: { sameSite: 'lax' }, cookieSameSite: 'Lax' }).key, 'sessions.cookieSameSite');
    assert.equal(configError({ rolling: 'yes' }).key, 'sessions.rolling');
    assert.equal(configError({ saveUninitialized: 1 }).key, 'sessions.saveUninitialized');
  });

  it('ownershipTimeoutMs: 5000 by default, its own setting (not the transport timeout), bounded', () => {
    assert.equal(resolveSessionConfig({}).ownershipTimeoutMs, 5000);
    assert.equal(resolveSessionConfig({ ownershipTimeoutMs: 250 }).ownershipTimeoutMs, 250);
    for (const bad of [50, 600_001, 1.5, '3000']) {
      assert.equal(configError({ ownershipTimeoutMs: bad }).key, 'sessions.ownershipTimeoutMs');
    }
  });
});
