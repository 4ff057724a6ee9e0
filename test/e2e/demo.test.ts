/**
 * `clowder demo --exit` (what `npm run demo` runs, without staying up): three nodes behind
 * `clowder balancer`, one URL printed, and the scripted tour through the balancer — the session
 * sticks, survives its node's SIGKILL on another node with its count and a re-issued cookie, the
 * restarted node holds it, an invalidation removes it everywhere — and every process stops (exit 0).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCli } from '../helpers/node-process.js';

test('clowder demo --exit: the tour goes through the balancer and ends cleanly', async () => {
  const res = await runCli(['demo', '--exit'], undefined, 90_000);
  assert.deepEqual({ code: res.code, signal: res.signal }, { code: 0, signal: null }, `${res.stdout}\n${res.stderr}`);
  const out = res.stdout;
  assert.match(out, /clowder balancer: http:\/\/127\.0\.0\.1:\d+\/app\//, 'one URL: the balancer');
  const home = /count=1 node=(node-[abc]) .*JSESSIONID=\w+\.(node-[abc])/.exec(out);
  assert.ok(home, out);
  assert.equal(home[1], home[2], 'the first cookie names the node that served it');
  assert.match(out, new RegExp(`count=3 node=${home[1]} `), 'the session sticks to its node');
  const failover = /count=4 node=(node-[abc]) .*JSESSIONID=\w+\.(node-[abc])/.exec(out);
  assert.ok(failover, out);
  assert.notEqual(failover[1], home[1], 'served by another node after the SIGKILL');
  assert.equal(failover[2], failover[1], 'the cookie is re-issued for the new node');
  assert.match(out, new RegExp(`GET ${home[1]} /app/read \\(direct\\) +→ count=5 `), 'the restarted node holds it');
  assert.match(out, /invalidated=1/);
  assert.equal((out.match(/→ count=0 node=/g) ?? []).length, 3, 'gone on every node');
  assert.match(out, /== done/);
});
