/**
 * Unknown config keys are refused all at once, each with a hint a user can act on: the nearest
 * known name, where a misplaced key belongs, or why an express-session option does not apply.
 * Also: `sessions.name` no longer silently means the context name.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveChannelConfig } from '../../../src/config/channel-config.js';
import { resolveNodeConfig } from '../../../src/config/node-config.js';
import { nearest } from '../../../src/config/schema-helpers.js';
import { resolveSessionConfig, type SessionConfigInput } from '../../../src/config/session-config.js';
import { ConfigError, ErrorCode, UnknownOptionsError } from '../../../src/core/errors.js';
import { createSessions } from '../../../src/node/session-cluster.js';
import { thrownBy } from '../../helpers/thrown.js';

function refused(fn: () => unknown): UnknownOptionsError {
  const caught = thrownBy(fn);
  assert.ok(caught instanceof UnknownOptionsError, `expected UnknownOptionsError, got ${String(caught)}`);
  assert.ok(caught instanceof ConfigError);
  assert.equal(caught.code, ErrorCode.CONFIG);
  return caught;
}

/** The hint for each refused key. */
const hints = (err: UnknownOptionsError) => Object.fromEntries(err.unknown.map((u) => [u.key, u.hint]));

describe('unknown config keys', () => {
  it('lists every unknown key at once, each named in the message with the nearest known name', () => {
    const err = refused(() =>
      resolveSessionConfig({ cookiNam: 'sid', maxInactiveIntervall: 60, sendOption: 'sync' } as SessionConfigInput),
    );
    const h = hints(err);
    assert.deepEqual(Object.keys(h).sort(), [
      'sessions.cookiNam',
      'sessions.maxInactiveIntervall',
      'sessions.sendOption',
    ]);
    assert.match(h['sessions.cookiNam']!, /did you mean sessions\.cookieName\?/);
    assert.match(h['sessions.maxInactiveIntervall']!, /did you mean sessions\.maxInactiveInterval\?/);
    assert.match(h['sessions.sendOption']!, /did you mean sessions\.sendOptions\?/);
    for (const u of err.unknown)
      assert.ok(err.message.includes(`invalid config: "${u.key}" is ${u.hint}`), err.message);
    assert.equal(err.key, 'sessions.cookiNam', 'key is the first unknown one');
  });

  it('explains the express-session options that do not apply', () => {
    const input = { secret: 'keyboard cat', store: {}, genid: () => 'x', name: 'sid', proxy: true, unset: 'destroy' };
    const h = hints(refused(() => resolveSessionConfig(input as SessionConfigInput, 'apps.0.sessions')));
    assert.match(h['apps.0.sessions.secret']!, /not signed|does not sign.*128 random bits/);
    assert.match(h['apps.0.sessions.store']!, /clowder is the store.*clowder\/express-session/);
    assert.match(h['apps.0.sessions.genid']!, /128 random bits/);
    assert.match(h['apps.0.sessions.name']!, /the cookie name is cookieName/);
    assert.match(h['apps.0.sessions.proxy']!, /trustProxy/);
    assert.match(h['apps.0.sessions.unset']!, /destroy\(\)/);
  });

  it('sessions.name is refused (it used to mean the context name silently); contextName names the context', () => {
    refused(() => resolveSessionConfig({ name: 'sid' } as SessionConfigInput));
    assert.equal(resolveSessionConfig({ contextName: 'shop' }).name, 'shop');
    assert.equal(resolveSessionConfig({ contextPath: '/shop' }).name, '/shop');
  });

  it('nested keys: the nearest name at their level, or the nested object they belong to', () => {
    const h = hints(
      refused(() =>
        resolveChannelConfig({
          port: 4000,
          secret: 'x',
          receiver: { prot: 4000 },
          membership: { type: 'static', members: ['127.0.0.1:4000'], pingInterval: 5 },
        } as never),
      ),
    );
    assert.match(h.port!, /receiver\.port/);
    assert.match(h.secret!, /clusterKey/);
    assert.match(h['receiver.prot']!, /did you mean receiver\.port\?/);
    assert.match(h['membership.pingInterval']!, /did you mean membership\.pingIntervalMs\?/);
  });

  it('createSessions refuses unknown top-level keys, placing session options under sessions', () => {
    const h = hints(refused(() => createSessions({ secret: 'x', cookieName: 'sid', cluster: {} } as never)));
    assert.match(h.secret!, /express-session option.*does not sign/);
    assert.match(h.cookieName!, /did you mean sessions\.cookieName\?/);
    assert.match(h.cluster!, /channel/);
    const placed = hints(refused(() => createSessions({ port: 4001, members: [], clusterKey: 'k' } as never)));
    assert.match(placed.port!, /channel\.receiver\.port/);
    assert.match(placed.members!, /channel\.membership/);
    assert.match(placed.clusterKey!, /did you mean channel\.clusterKey\?/);
    // Options an express-session user passes inside sessions: all refused together.
    const e = refused(() => createSessions({ sessions: { secret: 'x', name: 'sid', cookiNam: 'y' } } as never));
    assert.deepEqual(
      e.unknown.map((u) => u.key),
      ['sessions.secret', 'sessions.name', 'sessions.cookiNam'],
    );
  });

  it('a node config: top-level keys placed under sessions, cluster or http', () => {
    const h = hints(
      refused(() =>
        resolveNodeConfig({
          apps: [{ path: '/', module: 'x' }],
          port: 80,
          cookieName: 'sid',
          channel: {},
          domain: 'd',
        }),
      ),
    );
    assert.match(h.port!, /did you mean http\.port\?/);
    assert.match(h.cookieName!, /did you mean sessions\.cookieName\?/);
    assert.match(h.channel!, /cluster/);
    assert.match(h.domain!, /did you mean cluster\.domain\?/);
  });

  it('no guess when nothing is close: the known names are listed', () => {
    const h = hints(refused(() => resolveChannelConfig({ receiver: { zzzzzz: 1 } } as never)));
    assert.match(h['receiver.zzzzzz']!, /known: address, port, autoBind/);
  });

  it('nearest(): typos, transpositions and case; nothing for unrelated words', () => {
    const known = ['cookieName', 'cookieSecure', 'contextPath', 'maxInactiveInterval'];
    assert.equal(nearest('cookiename', known), 'cookieName');
    assert.equal(nearest('cookeiName', known), 'cookieName');
    assert.equal(nearest('contextpth', known), 'contextPath');
    assert.equal(nearest('maxInactive', known), 'maxInactiveInterval');
    assert.equal(nearest('banana', known), undefined);
  });
});
