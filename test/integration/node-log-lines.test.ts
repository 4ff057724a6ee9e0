/**
 * A node's log lines are JSON objects with each key once: the node's name is bound by the node for
 * its own lines and by the channel for the channel's, never twice on one line (a duplicate key is
 * valid JSON but log pipelines keep one of them or refuse the line).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { createClusterNode } from '../../src/index.js';
import { isolatedMulticast, waitFor } from '../helpers/wait.js';

test("every log line of a node names the node once, the channel's lines included", async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(line);
      done();
    },
  });
  const { port, domain } = isolatedMulticast();
  const node = createClusterNode(
    {
      name: 'logged',
      http: { port: 0, drainMs: 0 },
      apps: [{ path: '/', app: (_req, res) => res.end('ok') }],
      cluster: { domain, receiver: { port: 0 }, membership: { type: 'multicast', port } },
    },
    { logger: pino({ level: 'debug' }, sink) },
  );
  await node.start();
  await node.stop();
  await waitFor(() => lines.some((l) => l.includes('"component":"channel"')), 'a line of the channel');
  for (const line of lines) {
    const keys = [...line.matchAll(/"([A-Za-z_]+)":/g)].map((m) => m[1]);
    const nodeKeys = keys.filter((k) => k === 'node').length;
    assert.ok(nodeKeys <= 1, `"node" ${nodeKeys} times in ${line}`);
    assert.equal(JSON.parse(line).node, 'logged', `the node is named in ${line}`);
  }
});
