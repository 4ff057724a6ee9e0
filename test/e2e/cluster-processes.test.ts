/**
 * Three channels in three processes, for both membership kinds: formation, SIGKILL detection,
 * graceful leave, restart as a new member, and a message between processes.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { killAll, NodeProcess } from '../helpers/processes.js';
import { freePorts, isolatedMulticast, waitFor } from '../helpers/wait.js';

const FREQUENCY = 500; // Tomcat's default heartbeat frequency
const DROP = 3000; // Tomcat's default dropTime

type Kind = 'multicast' | 'static';

async function configs(kind: Kind): Promise<Record<string, Record<string, unknown>>> {
  if (kind === 'multicast') {
    const { port, domain } = isolatedMulticast();
    const base = {
      domain,
      receiver: { port: 0 },
      membership: { type: 'multicast', port, frequencyMs: FREQUENCY, dropTimeMs: DROP },
    };
    return { a: base, b: base, c: base };
  }
  const ports = await freePorts(3);
  const members = ports.map((p) => `127.0.0.1:${p}`);
  const out: Record<string, Record<string, unknown>> = {};
  ['a', 'b', 'c'].forEach((name, i) => {
    out[name] = {
      receiver: { port: ports[i], autoBind: 1 },
      membership: { type: 'static', members, pingIntervalMs: FREQUENCY, dropTimeMs: DROP },
    };
  });
  return out;
}

for (const kind of ['multicast', 'static'] as const) {
  describe(`three processes, ${kind} membership`, () => {
    const all: NodeProcess[] = [];
    after(() => killAll(all));

    test('form, exchange, detect a SIGKILL fast, see a leave at once, and take a restart as a new member', async (t) => {
      const cfg = await configs(kind);
      const start = (name: string) => {
        const n = new NodeProcess(name, cfg[name]!);
        all.push(n);
        return n;
      };
      const [a, b, c] = [start('a'), start('b'), start('c')];
      await Promise.all([a.started(), b.started(), c.started()]);
      const lastStart = Date.now();
      await waitFor(() => [a, b, c].every((n) => n.members().size === 2), 'full membership', { timeoutMs: 15_000 });
      t.diagnostic(`membership formed ${Date.now() - lastStart} ms after the last start (heartbeat ${FREQUENCY} ms)`);

      // A message across processes, acknowledged after processing.
      a.command({ cmd: 'send', to: 'b', value: { hello: 'b' }, options: 'use_ack,sync', id: 1 });
      await waitFor(() => a.events.some((e) => e.type === 'sent' && e.id === 1), 'acknowledged send');
      assert.ok(b.events.some((e) => e.type === 'message' && e.from === 'a'));

      // SIGKILL: no goodbye. Its connections reset, and the others drop it as unreachable before
      // its heartbeats could be missed for dropTime: a drop by silence has the reason "timeout".
      // The reason proves it, not a window of time (which would measure the machine's load).
      const killedAt = Date.now();
      c.kill('SIGKILL');
      await waitFor(() => !a.members().has('c') && !b.members().has('c'), 'c dropped', { timeoutMs: 15_000 });
      for (const n of [a, b]) {
        const e = n.events.findLast((x) => x.type === 'removed' && x.name === 'c')!;
        assert.equal(e.reason, 'unreachable');
        t.diagnostic(`${n.name} dropped c ${(e.at as number) - killedAt} ms after SIGKILL`);
      }

      // Graceful stop: seen at once, reason "leave" (not a suspicion after dropTime).
      await b.stop();
      await waitFor(() => !a.members().has('b'), 'b gone after graceful stop', { timeoutMs: 15_000 });
      const leave = a.events.findLast((x) => x.type === 'removed' && x.name === 'b')!;
      assert.equal(leave.reason, 'leave');

      // Restart of c: a new process is a new member (new id) under the same name.
      const oldId = c.id;
      const c2 = start('c');
      await c2.started();
      await waitFor(() => a.members().has('c'), 'restarted c seen', { timeoutMs: 15_000 });
      assert.notEqual(c2.id, oldId);
      assert.ok(a.memberIds().has(c2.id));
      assert.ok(!a.memberIds().has(oldId));
      await Promise.all([a.stop(), c2.stop()]);
    });
  });
}
