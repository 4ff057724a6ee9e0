/**
 * Failover through the real HAProxy with examples/haproxy/haproxy.cfg (ports rewritten): sessions
 * stick on the cookie's route; a SIGKILLed node's sessions continue on the others with their
 * latest values and a cookie for the new node, without one failed request (HAProxy marks the node
 * down on the first refused connection and redispatches the GET); the node comes back and takes
 * its share. Skipped when haproxy is not installed (.ci/run installs it).
 */
import { after, describe, test } from 'node:test';
import {
  type BalancerProcess,
  Cluster,
  failoverScenario,
  MANAGERS,
  startHaproxy,
  which,
} from '../helpers/balancer-cluster.js';
import { freePorts } from '../helpers/wait.js';

const haproxy = which('haproxy');

for (const manager of MANAGERS) {
  describe(`HAProxy in front of three nodes (${manager.name} manager)`, {
    skip: haproxy ? false : 'haproxy is not installed (apt-get install haproxy; .ci/run installs it)',
  }, () => {
    let cluster: Cluster | undefined;
    let balancer: BalancerProcess | undefined;
    after(async () => {
      await balancer?.stop();
      await cluster?.destroy();
    });

    test('sticky sessions, SIGKILL failover without a failed request, the node comes back', async (t) => {
      cluster = await Cluster.start(manager.cli);
      const [listen] = await freePorts(1);
      balancer = await startHaproxy(haproxy!, listen!, cluster.httpPorts);
      // Health checks every 500 ms, rise 1: the restarted node is back within about a second.
      await failoverScenario(t, `http://127.0.0.1:${listen}`, cluster, { maxBackMs: 10_000 });
    });
  });
}
