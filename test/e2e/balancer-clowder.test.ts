/**
 * Failover through `clowder balancer` (the development balancer, as `npm run demo` runs it):
 * sessions stick on the cookie's route; a SIGKILLed node's sessions continue on the others with
 * their latest values and a cookie for the new node, without one failed request (the refused
 * connection marks the node down at once and the GET goes to another node); the node comes back
 * (health check) and takes its share. Then SIGTERM stops the balancer gracefully (exit 0).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Cluster, failoverScenario, MANAGERS, NAMES } from '../helpers/balancer-cluster.js';
import { CliProcess } from '../helpers/node-process.js';
import { freePorts } from '../helpers/wait.js';

for (const manager of MANAGERS) {
  describe(`clowder balancer in front of three nodes (${manager.name} manager)`, () => {
    let cluster: Cluster | undefined;
    let balancer: CliProcess | undefined;
    after(async () => {
      await balancer?.destroy();
      await cluster?.destroy();
    });

    test('sticky sessions, SIGKILL failover without a failed request, the node comes back', async (t) => {
      cluster = await Cluster.start(manager.cli);
      const [listen] = await freePorts(1);
      const backends = NAMES.flatMap((name, i) => ['--backend', `${name}=127.0.0.1:${cluster!.httpPorts[i]}`]);
      balancer = new CliProcess('balancer', [
        'balancer',
        '--json',
        '--port',
        String(listen),
        '--health-interval',
        '200',
        ...backends,
      ]);
      const ready = await balancer.ready();
      assert.equal(ready.http, `http://127.0.0.1:${listen}`);
      await failoverScenario(t, ready.http, cluster, { maxBackMs: 5_000 });
      assert.ok(
        balancer.logs.some((l) => l.msg === 'backend down'),
        'the killed node was logged down',
      );
      assert.deepEqual(await balancer.stop(), { code: 0, signal: null }, 'SIGTERM: a graceful stop');
    });
  });
}
