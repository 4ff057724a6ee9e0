import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type ChannelConfigInput,
  DEFAULT_INTERCEPTORS,
  resolveChannelConfig,
} from '../../../src/config/channel-config.js';
import { parseSendOptions, SendFlag } from '../../../src/config/send-options.js';
import { ConfigError, ErrorCode } from '../../../src/core/errors.js';

/** Resolves `input` expecting a ConfigError; returns it. */
function configError(input: unknown): ConfigError {
  let caught: unknown;
  try {
    resolveChannelConfig(input as ChannelConfigInput);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected ConfigError for ${JSON.stringify(input)}, got ${String(caught)}`);
  assert.equal(caught.code, ErrorCode.CONFIG);
  assert.ok(caught.expected.length > 0, 'expected form is described');
  assert.ok(caught.message.includes(`"${caught.key}"`), 'message names the key');
  return caught;
}

function sendOptionsError(input: number | string): ConfigError {
  let caught: unknown;
  try {
    parseSendOptions(input, 'sendOptions');
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected ConfigError for ${JSON.stringify(input)}, got ${String(caught)}`);
  assert.equal(caught.key, 'sendOptions');
  return caught;
}

describe('resolveChannelConfig defaults', () => {
  const c = resolveChannelConfig({});

  it('receiver: loopback, port 4000, autoBind 100', () => {
    assert.equal(c.receiver.address, '127.0.0.1');
    assert.equal(c.receiver.port, 4000);
    assert.equal(c.receiver.autoBind, 100);
    assert.equal(c.receiver.handshakeTimeoutMs, 5000);
  });

  it('multicast membership: 228.0.0.4:45564, 500/3000 ms, loopback interface, ttl 0', () => {
    const m = c.membership;
    assert.equal(m.type, 'multicast');
    if (m.type !== 'multicast') return;
    assert.equal(m.address, '228.0.0.4');
    assert.equal(m.port, 45564);
    assert.equal(m.frequencyMs, 500);
    assert.equal(m.dropTimeMs, 3000);
    assert.equal(m.interface, '127.0.0.1');
    assert.equal(m.ttl, 0, 'ttl "auto" resolves to 0 on a loopback interface');
  });

  it('ttl "auto" resolves to 1 on a non-loopback interface', () => {
    const x = resolveChannelConfig({ insecure: true, membership: { type: 'multicast', interface: '10.1.2.3' } });
    assert.equal(x.membership.type === 'multicast' && x.membership.ttl, 1);
    const y = resolveChannelConfig({ membership: { type: 'multicast', ttl: 5 } });
    assert.equal(y.membership.type === 'multicast' && y.membership.ttl, 5);
  });

  it('sendOptions 8 (async), no key, encrypt on, 4 MiB frames', () => {
    assert.equal(c.sendOptions, 8);
    assert.equal(c.sendOptions, SendFlag.ASYNCHRONOUS);
    assert.equal(c.clusterKey, undefined);
    assert.equal(c.encrypt, true);
    assert.equal(c.insecure, false);
    assert.equal(c.maxFrameBytes, 4 * 1024 * 1024);
    assert.equal(c.domain, 'default');
    assert.match(c.name, /^[A-Za-z0-9._-]{1,64}$/);
  });

  it('default interceptor stack, top first', () => {
    assert.deepEqual(
      c.interceptors.map((i) => ('type' in i ? i.type : i.name)),
      ['throughput', 'domainFilter', 'messageDispatch', 'fragmentation', 'failureDetector'],
    );
    assert.deepEqual(
      [...DEFAULT_INTERCEPTORS],
      ['throughput', 'domainFilter', 'messageDispatch', 'fragmentation', 'failureDetector'],
    );
  });

  const FRAGMENT_LIMITS = { maxOpenPerMember: 4, maxOpenMessages: 64, maxOpenBytes: 128 * 1024 * 1024 };
  it('interceptor names expand to their defaults', () => {
    const x = resolveChannelConfig({
      interceptors: ['fragmentation', { type: 'fragmentation', fragmentBytes: 65536 }],
    });
    assert.deepEqual(x.interceptors, [
      { ...FRAGMENT_LIMITS, type: 'fragmentation', fragmentBytes: 256 * 1024, expireMs: 60_000 },
      { ...FRAGMENT_LIMITS, type: 'fragmentation', fragmentBytes: 65536, expireMs: 60_000 },
    ]);
  });

  it('the result is frozen', () => {
    assert.ok(Object.isFrozen(c));
    assert.ok(Object.isFrozen(c.receiver));
    assert.ok(Object.isFrozen(c.membership));
    assert.ok(Object.isFrozen(c.interceptors));
  });

  it('static membership resolves with its defaults', () => {
    const x = resolveChannelConfig({ membership: { type: 'static', members: ['127.0.0.1:4001', 'localhost:4002'] } });
    assert.deepEqual(x.membership, {
      type: 'static',
      members: ['127.0.0.1:4001', 'localhost:4002'],
      pingIntervalMs: 500,
      dropTimeMs: 3000,
    });
  });
});

describe('resolveChannelConfig errors name the key and the expected form', () => {
  it('receiver.port of the wrong type', () => {
    const err = configError({ receiver: { port: 'x' } });
    assert.equal(err.key, 'receiver.port');
    assert.match(err.expected, /port number from 0 to 65535/);
    assert.match(err.message, /got "x"/);
  });

  it('receiver.port out of range', () => {
    assert.equal(configError({ receiver: { port: 70000 } }).key, 'receiver.port');
    assert.equal(configError({ receiver: { port: 1.5 } }).key, 'receiver.port');
  });

  it('unknown top-level key', () => {
    const err = configError({ recever: {} });
    assert.equal(err.key, 'recever');
    assert.match(err.expected, /known option/);
  });

  it('unknown nested key', () => {
    assert.equal(configError({ receiver: { prot: 4000 } }).key, 'receiver.prot');
    assert.equal(configError({ membership: { type: 'multicast', frequency: 5 } }).key, 'membership.frequency');
  });

  it('static membership without members', () => {
    const err = configError({ membership: { type: 'static' } });
    assert.equal(err.key, 'membership.members');
    assert.match(err.expected, /required/);
    assert.match(err.expected, /host:port/);
  });

  it('static membership with a malformed member', () => {
    const err = configError({ membership: { type: 'static', members: ['nope'] } });
    assert.equal(err.key, 'membership.members.0');
    assert.match(err.expected, /host:port/);
  });

  it('unknown membership type', () => {
    const err = configError({ membership: { type: 'gossip' } });
    assert.equal(err.key, 'membership.type');
    assert.match(err.expected, /multicast/);
  });

  it('multicast group outside 224/4', () => {
    assert.equal(configError({ membership: { type: 'multicast', address: '10.0.0.1' } }).key, 'membership.address');
  });

  it('dropTimeMs not above frequencyMs', () => {
    const err = configError({ membership: { type: 'multicast', frequencyMs: 500, dropTimeMs: 500 } });
    assert.equal(err.key, 'membership.dropTimeMs');
  });

  it('sendOptions with an unknown name', () => {
    const err = configError({ sendOptions: 'udp' });
    assert.equal(err.key, 'sendOptions');
    assert.match(err.expected, /async/);
  });

  it('sendOptions with an unsupported bit says why', () => {
    assert.match(configError({ sendOptions: 32 }).expected, /UDP/);
    assert.match(configError({ sendOptions: 16 }).expected, /SECURE/);
    assert.match(configError({ sendOptions: 64 }).expected, /MULTICAST/);
  });

  it('sendOptions of the wrong type', () => {
    assert.equal(configError({ sendOptions: true }).key, 'sendOptions');
  });

  it('clusterKey too short', () => {
    const err = configError({ clusterKey: 'short' });
    assert.equal(err.key, 'clusterKey');
    assert.match(err.expected, /32 characters/);
  });

  it('maxFrameBytes below 64 KiB', () => {
    const err = configError({ maxFrameBytes: 1000 });
    assert.equal(err.key, 'maxFrameBytes');
    assert.match(err.expected, /65536/);
  });

  it('maxMessageBytes below maxFrameBytes', () => {
    assert.equal(configError({ maxFrameBytes: 8 * 1024 * 1024, maxMessageBytes: 1024 * 1024 }).key, 'maxMessageBytes');
  });

  it('reconnectMaxMs below reconnectMinMs', () => {
    assert.equal(configError({ sender: { reconnectMinMs: 500, reconnectMaxMs: 100 } }).key, 'sender.reconnectMaxMs');
  });

  it('bad node name', () => {
    assert.equal(configError({ name: 'has space' }).key, 'name');
  });

  it('unknown interceptor name', () => {
    assert.equal(configError({ interceptors: ['compression'] }).key, 'interceptors.0');
  });
});

describe('resolveChannelConfig security rule (no unauthenticated traffic beyond loopback)', () => {
  const KEY = 'Xk3vQ9pL2mN8rT5wY7zA1bC4dE6fG0hJ'; // random-looking: used as it is

  it('a receiver beyond loopback without a key is refused with key "clusterKey"', () => {
    const err = configError({ receiver: { address: '0.0.0.0' } });
    assert.equal(err.key, 'clusterKey');
    assert.match(err.expected, /receiver\.address/);
    assert.match(err.expected, /insecure/);
  });

  it('a multicast interface beyond loopback without a key is refused', () => {
    assert.equal(configError({ membership: { type: 'multicast', interface: '10.0.0.1' } }).key, 'clusterKey');
  });

  it('a multicast socket bound beyond loopback without a key is refused (it takes unicast heartbeats from other hosts)', () => {
    const err = configError({ membership: { type: 'multicast', bind: '0.0.0.0' } });
    assert.equal(err.key, 'clusterKey');
    assert.match(err.expected, /membership\.bind "0\.0\.0\.0"/);
    assert.equal(configError({ membership: { type: 'multicast', bind: '10.0.0.1' } }).key, 'clusterKey');
    for (const bind of ['127.0.0.1', '228.0.0.4'])
      assert.equal(resolveChannelConfig({ membership: { type: 'multicast', bind } }).membership.type, 'multicast');
  });

  it('a static member beyond loopback without a key is refused', () => {
    assert.equal(configError({ membership: { type: 'static', members: ['10.0.0.2:4000'] } }).key, 'clusterKey');
  });

  it('insecure: true or a key lifts it', () => {
    assert.equal(
      resolveChannelConfig({ receiver: { address: '0.0.0.0' }, insecure: true }).receiver.address,
      '0.0.0.0',
    );
    assert.equal(resolveChannelConfig({ receiver: { address: '0.0.0.0' }, clusterKey: KEY }).clusterKey, KEY);
  });

  it('loopback needs no key', () => {
    assert.equal(resolveChannelConfig({ receiver: { address: '127.0.0.1' } }).clusterKey, undefined);
    assert.equal(resolveChannelConfig({ receiver: { address: 'localhost' } }).clusterKey, undefined);
  });
});

describe('resolveChannelConfig leaves objects of the caller alone', () => {
  it('accepts a payload holding bytes (the codec supports Uint8Array)', () => {
    // deepFreeze must not try to freeze typed arrays: Object.freeze(new Uint8Array(1)) throws a TypeError.
    const payload = { contexts: ['/app'], token: new Uint8Array([1, 2, 3]) };
    const c = resolveChannelConfig({ payload });
    assert.deepEqual(c.payload, payload);
    assert.ok(resolveChannelConfig({ payload: Buffer.from('x') }));
  });

  it('does not freeze a custom interceptor object (it may keep state on itself)', () => {
    const custom = {
      name: 'counting',
      seen: 0,
      receive(this: { seen: number }, msg: unknown, next: (m: unknown) => void) {
        this.seen++;
        return next(msg);
      },
    };
    const c = resolveChannelConfig({ interceptors: [custom] });
    assert.equal(c.interceptors[0], custom);
    assert.equal(Object.isFrozen(custom), false);
  });
});

describe('parseSendOptions', () => {
  it('accepts Tomcat integers and names', () => {
    assert.equal(parseSendOptions(8), 8);
    assert.equal(parseSendOptions('6'), 6);
    assert.equal(parseSendOptions('async'), SendFlag.ASYNCHRONOUS);
    assert.equal(parseSendOptions('use_ack,sync'), 6);
    assert.equal(parseSendOptions('use_ack, sync'), 6);
    assert.equal(parseSendOptions('use_ack'), 2);
    assert.equal(parseSendOptions(2), 2);
  });

  it('sync alone implies use_ack', () => {
    assert.equal(parseSendOptions('sync'), 6);
    assert.equal(parseSendOptions(4), 6);
  });

  it('refuses unsupported bits and unknown names, naming the key', () => {
    for (const bad of [16, 32, 64, 'bogus', 'async,bogus', '', -1, 1.5, 0x10000, 256]) sendOptionsError(bad);
    assert.equal(
      (() => {
        try {
          parseSendOptions('udp', 'options');
        } catch (err) {
          return (err as ConfigError).key;
        }
        return undefined;
      })(),
      'options',
    );
  });
});

describe('detector config', () => {
  it('defaults: Lifeguard, 100 ms probes, 50 ms probe timeout, 3 indirect checks', () => {
    const d = resolveChannelConfig({}).detector;
    assert.deepEqual(d, {
      mode: 'lifeguard',
      probeIntervalMs: 100,
      probeTimeoutMs: 50,
      indirectChecks: 3,
      suspicionMult: 3,
      suspicionMaxMult: 3,
      awarenessMax: 8,
      verifyTimeoutMs: 300,
    });
    assert.equal(resolveChannelConfig({ detector: { mode: 'swim' } }).detector.mode, 'swim');
  });

  it('errors name the detector key', () => {
    assert.equal(configError({ detector: { mode: 'fast' } }).key, 'detector.mode');
    assert.equal(configError({ detector: { probeIntervalMs: 1 } }).key, 'detector.probeIntervalMs');
    assert.equal(configError({ detector: { indirectChecks: -1 } }).key, 'detector.indirectChecks');
    assert.equal(configError({ detector: { probeTimeoutMs: 100 } }).key, 'detector.probeTimeoutMs');
    assert.equal(
      configError({ detector: { probeIntervalMs: 200, probeTimeoutMs: 300 } }).key,
      'detector.probeTimeoutMs',
    );
    assert.equal(configError({ detector: { unknown: 1 } }).key, 'detector.unknown');
  });
});
