/**
 * Failover through the real HAProxy with examples/haproxy/haproxy.cfg (ports rewritten): sessions
 * stick on the cookie's route; a SIGKILLed node's sessions continue on the others with their
 * latest values and a cookie for the new node, without one failed request (HAProxy marks the node
 * down on the first refused connection and redispatches the GET); the node comes back and takes
 * its share. Skipped when haproxy is not installed (.ci/run installs it).
 */
import { describeBalancer, startHaproxy } from '../helpers/balancer-cluster.js';

// Health checks every 500 ms, rise 1: the restarted node is back within about a second.
describeBalancer('HAProxy', 'haproxy', startHaproxy, 1_0000);
