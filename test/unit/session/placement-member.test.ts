/**
 * Members advertise their placement (host, zone) in the member payload the hub sets; a peer's
 * payload is untrusted, so placementMemberOf falls back to the receiver address for anything
 * malformed instead of trusting it.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Channel } from '../../../src/channel/channel.js';
import type { Member } from '../../../src/channel/types.js';
import { createLogger } from '../../../src/core/logger.js';
import { placementMemberOf, ReplicationHub } from '../../../src/session/replication-hub.js';

function member(payload: unknown): Member {
  return {
    id: 'a'.repeat(32),
    name: 'a',
    host: '127.0.0.9',
    port: 4000,
    domain: '',
    startTime: 1,
    protocolVersion: 1,
    payload,
  };
}

describe('placement metadata in the member payload', () => {
  it('the hub advertises the contexts with the node host and zone', () => {
    let advertised: unknown;
    const channel = {
      onMessage() {},
      on() {},
      setPayload(p: unknown) {
        advertised = p;
      },
    } as unknown as Channel;
    const hub = new ReplicationHub(channel, createLogger('silent'), { host: 'm1', zone: 'z1' });
    hub.register({ contextName: '/app', receive() {} });
    assert.deepEqual(advertised, { contexts: ['/app'], host: 'm1', zone: 'z1' });
    const noZone = new ReplicationHub(channel, createLogger('silent'), { host: 'm2', zone: undefined });
    noZone.register({ contextName: '/b', receive() {} });
    assert.deepEqual(advertised, { contexts: ['/b'], host: 'm2' });
  });

  it('reads a peer’s host and zone, falling back to its address for anything malformed', () => {
    assert.deepEqual(placementMemberOf(member({ contexts: [], host: 'm1', zone: 'z' })), {
      id: 'a'.repeat(32),
      host: 'm1',
      zone: 'z',
    });
    for (const bad of [
      undefined,
      null,
      7,
      { contexts: [] },
      { host: 5 },
      { host: '' },
      { host: 'a b' },
      { host: 'x'.repeat(254) },
    ])
      assert.equal(placementMemberOf(member(bad)).host, '127.0.0.9', JSON.stringify(bad));
    for (const zone of [5, '', 'z z', 'z'.repeat(65), ['z']])
      assert.equal(placementMemberOf(member({ host: 'm', zone })).zone, undefined);
  });
});
