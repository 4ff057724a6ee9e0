/**
 * `clowder start` with CLOWDER_ADMIN_TOKEN and --trust-proxy, as an operator runs it behind a
 * proxy on the same host: the status endpoints refuse forwarded requests without the token and
 * answer them with it, the session cookie is Secure when the trusted proxy says https, and the
 * token appears nowhere in the process's output (debug logging on); a bad token stops the node,
 * naming the variable, without printing the value.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, describe, test } from 'node:test';
import { type CliProcess, COUNTER_APP, cleanEnv, destroyAll, runCli, startNode } from '../helpers/node-process.js';
import { freePorts } from '../helpers/wait.js';

const TOKEN = 'b3BlcmF0b3ItdG9rZW4tZm9yLXRoZS1jbGktdGVzdC0wMTIzNDU2Nzg5';

function fetch(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string; setCookie: string[] }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, setCookie: res.headers['set-cookie'] ?? [] }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('clowder start: admin token and trusted proxy', () => {
  const procs: CliProcess[] = [];
  after(async () => {
    await destroyAll(procs);
  });

  test('the token opens /_clowder to forwarded requests, --trust-proxy makes the cookie Secure, the token is never printed', async () => {
    const [http, cp] = await freePorts(2);
    const args = ['--name', 'a', '--port', String(http), '--cluster-port', String(cp), '--membership', 'static'];
    args.push('--members', `127.0.0.1:${cp}`, '--app', `/app=${COUNTER_APP}`, '--trust-proxy', 'loopback', '--json');
    const node = startNode('admin', args, cleanEnv({ CLOWDER_ADMIN_TOKEN: TOKEN, CLOWDER_LOG_LEVEL: 'debug' }));
    procs.push(node);
    await node.ready();
    const proxied = { 'X-Forwarded-For': '203.0.113.9', 'X-Forwarded-Proto': 'https' };
    assert.equal((await fetch(`${node.url}/_clowder/stats`, proxied)).status, 403);
    const stats = await fetch(`${node.url}/_clowder/stats`, { ...proxied, Authorization: `Bearer ${TOKEN}` });
    assert.equal(stats.status, 200);
    assert.equal(JSON.parse(stats.body).http.statusRefused, 1);
    const wrong = await fetch(`${node.url}/_clowder/ready`, { ...proxied, Authorization: `Bearer ${TOKEN}x` });
    assert.equal(wrong.status, 403);
    const counter = await fetch(`${node.url}/app/counter`, proxied);
    assert.match(counter.setCookie.find((l) => l.startsWith('JSESSIONID=')) ?? '', /; Secure/);
    assert.deepEqual(await node.stop(), { code: 0, signal: null });
    const output = [...node.stdout.map((l) => l.line), ...node.logs.map((l) => JSON.stringify(l))].join('\n');
    assert.ok(node.logs.length > 0, 'the node logged');
    assert.ok(!output.includes(TOKEN), 'the token is not in the output');
  });

  test('a short CLOWDER_ADMIN_TOKEN stops the node before it starts, naming the variable, not printing it', async () => {
    const secret = 'short-but-real-secret';
    const res = await runCli(
      ['start', '--name', 'b', '--port', '0', '--cluster-port', '0', '--app', `/app=${COUNTER_APP}`],
      cleanEnv({ CLOWDER_ADMIN_TOKEN: secret }),
    );
    assert.equal(res.code, 2, res.stderr);
    assert.match(res.stderr, /invalid config: "CLOWDER_ADMIN_TOKEN" must be a string of 32/);
    assert.ok(!res.stderr.includes(secret) && !res.stdout.includes(secret));
  });
});
