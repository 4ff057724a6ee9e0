/**
 * Failover through the real nginx with examples/nginx/nginx.conf (ports rewritten): sessions stick
 * on the cookie's route (map + an upstream per node with the others as backups); a SIGKILLed
 * node's sessions continue on the others with their latest values and a cookie for the new node,
 * without one failed request (proxy_next_upstream on the refused connection); the node comes back
 * and takes its share once fail_timeout passed. Skipped when nginx is not installed (.ci/run
 * installs it).
 */
import { describeBalancer, startNginx } from '../helpers/balancer-cluster.js';

// Passive checks only: the node gets new clients again after fail_timeout (2 s).
describeBalancer('nginx', 'nginx', startNginx, 15_000);
