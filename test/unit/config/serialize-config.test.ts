// sessions.serialize, serializeTimeoutMs and serializeQueueLimit: forms, defaults, and errors that
// name the dotted key and the expected form.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveSessionConfig, type SessionConfigInput } from '../../../src/config/session-config.js';
import { ConfigError } from '../../../src/core/errors.js';

function configError(input: unknown, prefix?: string): ConfigError {
  try {
    resolveSessionConfig(input as SessionConfigInput, prefix);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.ok(err.message.includes(`"${err.key}"`), 'the message names the key');
    return err;
  }
  assert.fail(`no ConfigError for ${JSON.stringify(input)}`);
}

describe('session config: serialize', () => {
  it('defaults: off, 10 s bound, 64 waiting requests per session', () => {
    const c = resolveSessionConfig({});
    assert.equal(c.serialize, false);
    assert.equal(c.serializeTimeoutMs, 10_000);
    assert.equal(c.serializeQueueLimit, 64);
  });

  it('true, false, or a regular expression on the path (compiled once; "" = off)', () => {
    assert.equal(resolveSessionConfig({ serialize: true }).serialize, true);
    assert.equal(resolveSessionConfig({ serialize: '' }).serialize, false);
    const p = resolveSessionConfig({ serialize: '^/app/(cart|checkout)' }).serialize;
    assert.ok(p instanceof RegExp);
    assert.equal(p.test('/app/cart/add'), true);
    assert.equal(p.test('/app/catalog'), false);
  });

  it('errors name the dotted key and the expected form', () => {
    const bad = configError({ serialize: 'yes(' }, 'apps.0.sessions');
    assert.equal(bad.key, 'apps.0.sessions.serialize');
    assert.match(bad.expected, /regular expression/);
    const type = configError({ serialize: 1 });
    assert.equal(type.key, 'sessions.serialize');
    assert.match(type.expected, /true, false or a regular expression/);
    const t = configError({ serializeTimeoutMs: 50 });
    assert.equal(t.key, 'sessions.serializeTimeoutMs');
    assert.match(t.expected, /milliseconds from 100/);
    const q = configError({ serializeQueueLimit: 0 });
    assert.equal(q.key, 'sessions.serializeQueueLimit');
    assert.match(q.expected, /from 1 to 100000/);
  });
});
