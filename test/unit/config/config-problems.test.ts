/**
 * A config error lists every problem of the config at once, one line each, across the components
 * of a node config (cluster, node-wide and per-application sessions, http, placement): unknown
 * keys and bad values together, the cross-field checks whose inputs are valid, each key named as
 * the user wrote it. A single problem gives the message it always gave.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ChannelConfigInput, resolveChannelConfig } from '../../../src/config/channel-config.js';
import { resolveNodeConfig } from '../../../src/config/node-config.js';
import { resolvePlacementConfig } from '../../../src/config/placement-config.js';
import { resolveSessionConfig, type SessionConfigInput } from '../../../src/config/session-config.js';
import { ConfigError, ErrorCode, UnknownOptionsError } from '../../../src/core/errors.js';
import { createClusterNode } from '../../../src/node/cluster-node.js';
import { createSessions } from '../../../src/node/session-cluster.js';
import { thrownBy } from '../../helpers/thrown.js';

const APPS = [{ path: '/', module: 'app.mjs' }];

function refused(fn: () => unknown): ConfigError {
  const caught = thrownBy(fn);
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.code, ErrorCode.CONFIG);
  assert.ok(caught.problems.length > 0);
  // key/expected are the first problem's; the message is one line per problem, in order.
  assert.equal(caught.key, caught.problems[0]!.key);
  assert.equal(caught.expected, caught.problems[0]!.expected);
  assert.equal(caught.message.split('\n').length, caught.problems.length);
  return caught;
}

const lines = (err: ConfigError) => err.message.split('\n');
const keys = (err: ConfigError) => err.problems.map((p) => p.key);
const node = (config: Record<string, unknown>) => refused(() => resolveNodeConfig({ apps: APPS, ...config }));

describe('config errors: every problem at once', () => {
  it('a single problem: exactly the one-line message of before, one entry in problems', () => {
    const err = refused(() => resolveChannelConfig({ detector: { mode: 'fast' } } as never));
    assert.equal(err.message, 'invalid config: "detector.mode" must be "lifeguard", "swim" or "off" (got "fast")');
    assert.deepEqual(err.problems, [
      { key: 'detector.mode', expected: '"lifeguard", "swim" or "off"', received: 'fast' },
    ]);
    assert.ok(!(err instanceof UnknownOptionsError));
  });

  it('channel: several bad values in one block, each named (the component path: no prefix)', () => {
    const err = refused(() =>
      resolveChannelConfig({
        receiver: { port: 70000, autoBind: 0 },
        sender: { timeoutMs: -1 },
        domain: '',
      } as ChannelConfigInput),
    );
    assert.deepEqual(keys(err).sort(), ['domain', 'receiver.autoBind', 'receiver.port', 'sender.timeoutMs']);
    assert.ok(
      lines(err).includes(
        'invalid config: "sender.timeoutMs" must be a duration in milliseconds from 1 to 600000 (got -1)',
      ),
    );
  });

  it('sessions: bad values and a cross-field check of valid keys together', () => {
    const err = refused(() =>
      resolveSessionConfig({
        backups: -1,
        manager: 'backup',
        ownership: 'none',
        replicationFilter: '(',
        cookieSecure: true,
        cookie: { secure: false },
      } as SessionConfigInput),
    );
    assert.deepEqual(keys(err).sort(), [
      'sessions.backups',
      'sessions.cookieSecure',
      'sessions.ownership',
      'sessions.replicationFilter',
    ]);
  });

  it('placement: host and zone together', () => {
    const err = refused(() => resolvePlacementConfig({ host: '', zone: 'a b' }));
    assert.deepEqual(keys(err), ['placement.host', 'placement.zone']);
  });

  it('unknown keys and bad values together: UnknownOptionsError, unknown keys first, then the rest', () => {
    const err = node({ cluster: { detector: { probeTimeoutMs: 200, mode: 'lifeguards', indirectCheck: 2 } } });
    assert.ok(err instanceof UnknownOptionsError);
    assert.deepEqual(
      err.unknown.map((u) => u.key),
      ['cluster.detector.indirectCheck'],
    );
    assert.deepEqual(lines(err), [
      'invalid config: "cluster.detector.indirectCheck" is not an option; did you mean cluster.detector.indirectChecks?',
      'invalid config: "cluster.detector.mode" must be "lifeguard", "swim" or "off" (got "lifeguards")',
      'invalid config: "cluster.detector.probeTimeoutMs" must be below cluster.detector.probeIntervalMs (100): indirect probes need the rest of the interval (got 200)',
    ]);
    assert.equal(err.key, 'cluster.detector.indirectCheck');
    assert.equal(err.problems[0]!.hint, err.unknown[0]!.hint);
  });

  it('a cross-field check runs when its inputs are valid, even next to another bad key', () => {
    const err = node({ cluster: { detector: { probeTimeoutMs: 200, mode: 'lifeguards' } } });
    assert.deepEqual(keys(err), ['cluster.detector.mode', 'cluster.detector.probeTimeoutMs']);
  });

  it('a cross-field check whose inputs are invalid is skipped, not reported twice', () => {
    // probeIntervalMs is bad: comparing probeTimeoutMs with it (or its default) would be wrong.
    assert.deepEqual(keys(node({ cluster: { detector: { probeTimeoutMs: 200, probeIntervalMs: 1 } } })), [
      'cluster.detector.probeIntervalMs',
    ]);
    // A bad reconnectMinMs is not compared with reconnectMaxMs (its default 50 would be > 5).
    assert.deepEqual(keys(node({ cluster: { sender: { reconnectMinMs: -1, reconnectMaxMs: 5 } } })), [
      'cluster.sender.reconnectMinMs',
    ]);
    // A bad member hides the security rule (it reads the members); a bad interval does not.
    assert.deepEqual(keys(node({ cluster: { membership: { type: 'static', members: ['10.0.0.1:4000', 'x'] } } })), [
      'cluster.membership.members.1',
    ]);
    assert.deepEqual(
      keys(node({ cluster: { membership: { type: 'static', members: ['10.0.0.1:4000'], pingIntervalMs: 1 } } })),
      ['cluster.membership.pingIntervalMs', 'cluster.clusterKey'],
    );
    // cookieSecure with cookie.secure is one problem only when both are valid.
    assert.deepEqual(keys(node({ sessions: { cookieSecure: true, cookie: { secure: 5 } } })), [
      'sessions.cookie.secure',
    ]);
  });

  it('problems in several blocks of a node config: sessions, cluster, http, placement, each application', () => {
    const err = node({
      sessions: { backups: -1, manage: 'backup' },
      cluster: { detector: { mode: 'lifeguards' }, sender: { timeoutMs: -1 } },
      http: { port: 'x', trustProxy: 'nonsense' },
      placement: { zone: '' },
      apps: [
        { path: '/a', module: 'a.mjs', sessions: { maxInactiveInterval: 'long' } },
        { path: '/a', module: 'b.mjs' },
      ],
    });
    assert.ok(err instanceof UnknownOptionsError);
    assert.deepEqual(
      err.unknown.map((u) => u.key),
      ['sessions.manage'],
    );
    assert.deepEqual(keys(err).sort(), [
      'apps.0.sessions.maxInactiveInterval',
      'apps.1.path',
      'cluster.detector.mode',
      'cluster.sender.timeoutMs',
      'http.port',
      'http.trustProxy',
      'placement.zone',
      'sessions.backups',
      'sessions.manage',
    ]);
    for (const line of [
      'invalid config: "sessions.manage" is not an option; did you mean sessions.manager?',
      'invalid config: "sessions.backups" must be an integer from 0 to 64 (copies of each session besides the primary) (got -1)',
      'invalid config: "cluster.detector.mode" must be "lifeguard", "swim" or "off" (got "lifeguards")',
      'invalid config: "cluster.sender.timeoutMs" must be a duration in milliseconds from 1 to 600000 (got -1)',
      'invalid config: "apps.1.path" must be a context path no other application uses (got "/a")',
    ])
      assert.ok(lines(err).includes(line), `${line}\nin\n${err.message}`);
    // Each key once: the node-wide sessions.backups is not repeated for each application.
    assert.equal(new Set(keys(err)).size, keys(err).length);
  });

  it('prefixes as written in the node config; library calls keep the component path', () => {
    // An application's sessions are the node-wide ones with its own over them: each key is named
    // where it was written, a combination of both where the application's key is.
    const err = node({
      sessions: { manager: 'backup', cookieName: 'a b' },
      apps: [{ path: '/', module: 'x', sessions: { ownership: 'none', sendOptions: 'fast' } }],
    });
    assert.deepEqual(keys(err).sort(), [
      'apps.0.sessions.ownership',
      'apps.0.sessions.sendOptions',
      'sessions.cookieName',
    ]);
    const unknown = node({ apps: [{ path: '/', module: 'x', sessions: { cookiNam: 'x' } }] });
    assert.deepEqual(lines(unknown), [
      'invalid config: "apps.0.sessions.cookiNam" is not an option; did you mean apps.0.sessions.cookieName?',
    ]);
    // The node's name is checked as the node's, not as cluster.name.
    assert.deepEqual(keys(node({ name: 'has space' })), ['name']);
    // A secret is never echoed: no received value.
    const key = node({ cluster: { clusterKey: 'short' } }).problems[0]!;
    assert.equal(key.key, 'cluster.clusterKey');
    assert.ok(!('received' in key));
    // createChannel / resolveChannelConfig: the channel's own keys.
    assert.deepEqual(keys(refused(() => resolveChannelConfig({ detector: { probeTimeoutMs: 200 } }))), [
      'detector.probeTimeoutMs',
    ]);
  });

  it('createSessions: unknown top-level keys, channel, sessions and placement problems together, named as written', () => {
    const err = refused(() =>
      createSessions({
        secret: 'x',
        channel: { detector: { mode: 'fast' }, insecure: true },
        sessions: { backups: -1 },
        placement: { zone: '' },
      } as never),
    );
    assert.ok(err instanceof UnknownOptionsError);
    assert.deepEqual(keys(err), ['secret', 'channel.detector.mode', 'sessions.backups', 'placement.zone']);
  });

  it('createClusterNode: applications that are no objects, or no list, are config problems (no TypeError)', () => {
    const err = refused(() => createClusterNode({ apps: [5], http: 5 } as never));
    assert.deepEqual(lines(err), [
      'invalid config: "http" must be an object (a mapping of keys to values) (got 5)',
      'invalid config: "apps.0" must be an object (a mapping of keys to values) (got 5)',
    ]);
    assert.deepEqual(keys(refused(() => createClusterNode({ apps: 'x' } as never))), ['apps']);
  });

  it('hostile shapes: a cyclic payload, a "__proto__" key and a non-object root are reported, never a crash', () => {
    const payload: Record<string, unknown> = { contexts: ['/'] };
    payload.self = payload;
    assert.deepEqual(keys(refused(() => resolveChannelConfig({ payload, domain: '' }))), ['domain']);
    const parsed = JSON.parse('{"__proto__": {"polluted": true}, "receiver": {"port": -1}}');
    assert.deepEqual(keys(refused(() => resolveChannelConfig(parsed))), ['__proto__', 'receiver.port']);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.deepEqual(keys(refused(() => resolveNodeConfig(5))), ['']);
  });

  it('ConfigError built from a list; UnknownOptionsError built as before still works', () => {
    const err = new ConfigError([
      { key: 'a', expected: 'x', received: 1 },
      { key: 'b', expected: 'y' },
    ]);
    assert.equal(err.message, 'invalid config: "a" must be x (got 1)\ninvalid config: "b" must be y');
    assert.deepEqual([err.key, err.expected], ['a', 'x']);
    const u = new UnknownOptionsError([{ key: 'k', hint: 'not an option' }]);
    assert.equal(u.message, 'invalid config: "k" is not an option');
    assert.equal(u.key, 'k');
    assert.equal(u.problems.length, 1);
    assert.throws(() => new ConfigError([]), TypeError);
  });
});
