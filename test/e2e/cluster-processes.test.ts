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

    test('form, exchange, detect a SIGKILL fast, see a leave at once, and take a restart as a new member', async () => {
      const cfg = await configs(kind);
      const start = (name: string) => {
        const n = new NodeProcess(name, cfg[name]!);
        all.push(n);
        return n;
      };
      const [a, b, c] = [start('a'), start('b'), start('c')];
      await Promise.all([a.started(), b.started(), c.started()]);
      const lastStart = Date.now();
      await waitFor(() => [a, b, c].every((n) => n.members().size === 2), 'full membership', {
        timeoutMs: 2 * FREQUENCY + 500,
      });
      const formedIn = Date.now() - lastStart;
      assert.ok(
        formedIn <= 2 * FREQUENCY,
        `membership formed in ${formedIn} ms (two heartbeat periods: ${2 * FREQUENCY})`,
      );

      // A message across processes, acknowledged after processing.
      a.command({ cmd: 'send', to: 'b', value: { hello: 'b' }, options: 'use_ack,sync', id: 1 });
      await waitFor(() => a.events.some((e) => e.type === 'sent' && e.id === 1), 'acknowledged send');
      assert.ok(b.events.some((e) => e.type === 'message' && e.from === 'a'));

      // SIGKILL: no goodbye; the others must notice well under dropTime.
      const killedAt = Date.now();
      c.kill('SIGKILL');
      await waitFor(() => !a.members().has('c') && !b.members().has('c'), 'c dropped after SIGKILL', {
        timeoutMs: DROP + 2000,
      });
      const detections = [a, b].map((n) => {
        const e = n.events.findLast((x) => x.type === 'removed' && x.name === 'c')!;
        return { ms: (e.at as number) - killedAt, reason: e.reason };
      });
      for (const d of detections) {
        assert.ok(d.ms < 1000, `SIGKILLed node dropped after ${d.ms} ms (must be well under dropTime ${DROP})`);
        assert.equal(d.reason, 'unreachable');
      }

      // Graceful stop: seen at once, reason "leave".
      const stoppedAt = Date.now();
      await b.stop();
      await waitFor(() => !a.members().has('b'), 'b gone after graceful stop', { timeoutMs: 1000 });
      const leave = a.events.findLast((x) => x.type === 'removed' && x.name === 'b')!;
      assert.equal(leave.reason, 'leave');
      assert.ok((leave.at as number) - stoppedAt < 500);

      // Restart of c: a new process is a new member (new id) under the same name.
      const oldId = c.id;
      const c2 = start('c');
      await c2.started();
      await waitFor(() => a.members().has('c'), 'restarted c seen', { timeoutMs: 2 * FREQUENCY + 1000 });
      assert.notEqual(c2.id, oldId);
      assert.ok(a.memberIds().has(c2.id));
      assert.ok(!a.memberIds().has(oldId));
      await Promise.all([a.stop(), c2.stop()]);
    });
  });
}
