/**
 * Failover through the real nginx with examples/nginx/nginx.conf (ports rewritten): sessions stick
 * on the cookie's route (map + an upstream per node with the others as backups); a SIGKILLed
 * node's sessions continue on the others with their latest values and a cookie for the new node,
 * without one failed request (proxy_next_upstream on the refused connection); the node comes back
 * and takes its share once fail_timeout passed. Skipped when nginx is not installed (.ci/run
 * installs it).
 */
import { after, describe, test } from 'node:test';
import {
  type BalancerProcess,
  Cluster,
  failoverScenario,
  MANAGERS,
  startNginx,
  which,
} from '../helpers/balancer-cluster.js';
import { freePorts } from '../helpers/wait.js';

const nginx = which('nginx');

for (const manager of MANAGERS) {
  describe(`nginx in front of three nodes (${manager.name} manager)`, {
    skip: nginx ? false : 'nginx is not installed (apt-get install nginx; .ci/run installs it)',
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
      balancer = await startNginx(nginx!, listen!, cluster.httpPorts);
      // Passive checks only: the node gets new clients again after fail_timeout (2 s).
      await failoverScenario(t, `http://127.0.0.1:${listen}`, cluster, { maxBackMs: 15_000 });
    });
  });
}
