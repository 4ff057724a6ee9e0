/**
 * Rolling upgrade across protocol versions, with two real builds in separate processes: the
 * current package (dist/) and a second build of it whose version constants were changed
 * (test/helpers/variant-build.ts). A node of the next version that still speaks this one joins and
 * exchanges messages both ways; a node that shares no version with it is refused, counted
 * (`transport.refusedProtocolVersion`) and logged on both sides, over TCP hellos (static
 * membership) and over heartbeats (multicast), and never becomes a member.
 */
import * as assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MIN_PROTOCOL_VERSION, PROTOCOL_VERSION } from '../../src/wire/member.js';
import { buildVariant, CURRENT_DIST, type VariantBuild } from '../helpers/variant-build.js';
import { freePorts, isolatedMulticast, waitFor } from '../helpers/wait.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/versioned-channel.js', import.meta.url));
const KEY = 'rolling-upgrade-test-cluster-key-0123456789abcdef';

interface Event {
  type: string;
  [k: string]: unknown;
}

class Node {
  readonly events: Event[] = [];
  readonly child: ChildProcess;
  exited = false;
  constructor(
    readonly name: string,
    index: string,
    config: Record<string, unknown>,
  ) {
    this.child = fork(FIXTURE, [index, JSON.stringify({ name, clusterKey: KEY, ...config })], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (m: Event) => this.events.push(m));
    this.child.on('exit', () => {
      this.exited = true;
    });
  }
  started(): Promise<void> {
    return waitFor(() => this.has('started') || this.exited, `${this.name} to start`).then(() => {
      if (!this.has('started')) throw new Error(`${this.name} exited before it started`);
    });
  }
  has(type: string, pred: (e: Event) => boolean = () => true): boolean {
    return this.events.some((e) => e.type === type && pred(e));
  }
  added(name: string): Event | undefined {
    return this.events.find((e) => e.type === 'added' && e.name === name);
  }
  async stats(): Promise<{ transport: { refusedProtocolVersion: number; protocolErrors: number } }> {
    const n = this.events.length;
    this.child.send({ cmd: 'stats' });
    await waitFor(() => this.events.slice(n).some((e) => e.type === 'stats'), `${this.name} stats`);
    return this.events.slice(n).find((e) => e.type === 'stats')!.stats as never;
  }
  async refused(): Promise<number> {
    return (await this.stats()).transport.refusedProtocolVersion;
  }
  refusalLogs(): Event[] {
    return this.events.filter((e) => e.type === 'log' && /incompatible protocol version/.test(String(e.msg)));
  }
  stop(): Promise<void> {
    if (this.exited) return Promise.resolve();
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.send({ cmd: 'stop' });
    return gone;
  }
}

/** Membership configs for a pair of nodes: static (TCP hellos) or multicast (heartbeats). */
async function memberships(kind: 'static' | 'multicast'): Promise<[Record<string, unknown>, Record<string, unknown>]> {
  if (kind === 'multicast') {
    const { port, domain } = isolatedMulticast();
    const c = {
      domain,
      receiver: { port: 0 },
      membership: { type: 'multicast', port, frequencyMs: 100, dropTimeMs: 1000 },
    };
    return [c, c];
  }
  const [pa, pb] = await freePorts(2);
  const members = [`127.0.0.1:${pa}`, `127.0.0.1:${pb}`];
  const m = { type: 'static', members, pingIntervalMs: 100, dropTimeMs: 1000 };
  return [
    { receiver: { port: pa, autoBind: 1 }, membership: m },
    { receiver: { port: pb, autoBind: 1 }, membership: m },
  ];
}

describe('rolling upgrade: protocol versions across two builds', { concurrency: false }, () => {
  let next: VariantBuild;
  let incompatible: VariantBuild;
  const current = join(CURRENT_DIST, 'index.js');
  const nodes: Node[] = [];

  before(async () => {
    assert.ok(existsSync(current), 'dist/ is missing: run `npm run build` first');
    // The next release: speaks PROTOCOL_VERSION + 1 and still this one.
    next = await buildVariant(PROTOCOL_VERSION + 1, PROTOCOL_VERSION);
    // A release that dropped this version (an upgrade that skipped one).
    incompatible = await buildVariant(PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 1);
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await Promise.all([next?.remove(), incompatible?.remove()]);
  });

  async function pair(kind: 'static' | 'multicast', other: VariantBuild): Promise<[Node, Node]> {
    const [ca, cb] = await memberships(kind);
    const a = new Node('current', current, ca);
    const b = new Node('upgraded', other.index, cb);
    nodes.push(a, b);
    await Promise.all([a.started(), b.started()]);
    return [a, b];
  }

  it('the builds speak what they are meant to (dist/ is current)', async () => {
    const [a, b] = await pair('static', next);
    assert.equal(a.events.find((e) => e.type === 'started')!.protocolVersion, PROTOCOL_VERSION);
    assert.equal(b.events.find((e) => e.type === 'started')!.protocolVersion, PROTOCOL_VERSION + 1);
    await Promise.all([a.stop(), b.stop()]);
  });

  for (const kind of ['static', 'multicast'] as const) {
    it(`${kind}: a node of the next version joins and messages flow both ways`, async () => {
      const [a, b] = await pair(kind, next);
      await waitFor(() => a.added('upgraded') !== undefined && b.added('current') !== undefined, 'both members');
      assert.equal(a.added('upgraded')!.protocolVersion, PROTOCOL_VERSION + 1);
      assert.equal(b.added('current')!.protocolVersion, PROTOCOL_VERSION);
      a.child.send({ cmd: 'send', to: 'upgraded', value: { hello: 'from current' } });
      b.child.send({ cmd: 'send', to: 'current', value: { hello: 'from upgraded' } });
      await waitFor(
        () =>
          b.has('message', (e) => (e.value as { hello?: string }).hello === 'from current') &&
          a.has('message', (e) => (e.value as { hello?: string }).hello === 'from upgraded'),
        'a message each way',
      );
      assert.ok(!a.has('sendFailed') && !b.has('sendFailed'));
      assert.equal(await a.refused(), 0);
      assert.equal(await b.refused(), 0);
      assert.deepEqual([...a.refusalLogs(), ...b.refusalLogs()], []);
      await Promise.all([a.stop(), b.stop()]);
    });

    it(`${kind}: a node sharing no version is refused, counted and logged on both sides`, async () => {
      const [a, b] = await pair(kind, incompatible);
      // Several rounds of pings or heartbeats, each refused on both sides.
      await waitFor(async () => (await a.refused()) >= 3 && (await b.refused()) >= 3, 'refusals on both sides', {
        intervalMs: 50,
      });
      assert.equal(a.added('upgraded'), undefined, 'the current node never admitted the incompatible one');
      assert.equal(b.added('current'), undefined, 'nor the other way round');
      for (const [n, peer, local] of [
        [a, `${PROTOCOL_VERSION + 1}-${PROTOCOL_VERSION + 1}`, `${MIN_PROTOCOL_VERSION}-${PROTOCOL_VERSION}`],
        [b, `${MIN_PROTOCOL_VERSION}-${PROTOCOL_VERSION}`, `${PROTOCOL_VERSION + 1}-${PROTOCOL_VERSION + 1}`],
      ] as const) {
        const logs = n.refusalLogs();
        // Rate-limited: one line a minute per peer address, however many refusals were counted.
        assert.equal(logs.length, 1, `${n.name} logged the refusal once`);
        const obj = logs[0]!.obj as { peerVersions: string; localVersions: string };
        assert.equal(obj.peerVersions, peer);
        assert.equal(obj.localVersions, local);
        assert.equal((await n.stats()).transport.protocolErrors, 0, 'not counted as a protocol error');
      }
      await Promise.all([a.stop(), b.stop()]);
    });
  }
});
