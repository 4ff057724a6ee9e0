/**
 * `clowder demo`: a local 3-node cluster of the counter application on 127.0.0.1 — three
 * `clowder start` processes with one shared static member list — behind `clowder balancer` (one
 * URL), and a failover walk-through through it: a session sticks to its node, survives that
 * node's SIGKILL on another node (the cookie re-issued for it), the node comes back holding it and
 * takes new clients, and an invalidation removes it everywhere. Then it keeps running and prints
 * the URL and curl commands to try by hand, until Ctrl-C (or exits at once with --exit).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Balancer } from './balancer-proxy.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const COUNTER = fileURLToPath(new URL('../../examples/counter/app.mjs', import.meta.url));
const NAMES = ['node-a', 'node-b', 'node-c'];

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** The preferred ports if all are free, else any free ones. */
async function ports(preferred: number[]): Promise<number[]> {
  const free = await Promise.all(preferred.map(portFree));
  if (free.every(Boolean)) return preferred;
  return Promise.all(preferred.map(() => freePort()));
}

function get(port: number, path: string, cookie?: string): Promise<{ status: number; body: string; cookie?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: cookie ? { cookie } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => {
        const set = res.headers['set-cookie']?.[0]?.split(';')[0];
        resolve({ status: res.statusCode ?? 0, body: body.trim(), cookie: set });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

export async function runDemo(options: { exit: boolean }): Promise<void> {
  const [front, ...http] = await ports([8080, 8081, 8082, 8083]);
  const cluster = await ports([4001, 4002, 4003]);
  const members = cluster.map((p) => `127.0.0.1:${p}`).join(',');
  const children = new Map<string, ChildProcess>();
  const say = (text: string) => process.stdout.write(`\n== ${text}\n`);
  const show = (label: string, r: { body: string; cookie?: string }) =>
    process.stdout.write(`  ${label.padEnd(34)} → ${r.body}${r.cookie ? `   (Set-Cookie: ${r.cookie})` : ''}\n`);
  const nodeOf = (body: string) => /node=(\S+)/.exec(body)?.[1] ?? '?';

  const start = (i: number): Promise<void> => {
    const name = NAMES[i]!;
    const child = spawn(
      process.execPath,
      [
        MAIN,
        'start',
        '--json',
        '--name',
        name,
        '--port',
        String(http[i]),
        '--cluster-port',
        String(cluster[i]),
        '--membership',
        'static',
        '--members',
        members,
        '--app',
        `/app=${COUNTER}`,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, CLOWDER_LOG_LEVEL: process.env.CLOWDER_LOG_LEVEL ?? 'warn' },
      },
    );
    children.set(name, child);
    createInterface({ input: child.stderr! }).on('line', (line) => process.stderr.write(`  [${name}] ${line}\n`));
    return new Promise((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.includes('"ready"')) {
          process.stdout.write(`  ${name} ready: http://127.0.0.1:${http[i]}/app/  (cluster port ${cluster[i]})\n`);
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready`)));
    });
  };
  const stopAll = async () => {
    for (const child of children.values())
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.all(
      Array.from(children.values(), (c) =>
        c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)),
      ),
    );
  };
  const balancer = new Balancer({
    port: front,
    backends: NAMES.map((route, i) => ({ route, host: '127.0.0.1', port: http[i]! })),
    healthIntervalMs: 500,
  });
  const portOf = (name: string) => http[NAMES.indexOf(name)]!;

  try {
    say('starting a 3-node cluster of the counter application on 127.0.0.1 (static membership, one shared list)');
    // One after the other, as the HOW-TO does: each takes the sessions of those already running.
    for (let i = 0; i < NAMES.length; i++) await start(i);
    await balancer.start();
    const url = `http://127.0.0.1:${front}`;
    process.stdout.write(`  clowder balancer: ${url}/app/  → sticky on the cookie's route, health-checked\n`);

    say('through the balancer: a session is created on one node and sticks to it; every node holds it');
    let r = await get(front!, '/app/counter');
    show('GET /app/counter', r);
    const home = nodeOf(r.body);
    const cookie = r.cookie!;
    for (let i = 0; i < 2; i++) show('GET /app/counter', await get(front!, '/app/counter', cookie));
    for (const name of NAMES)
      if (name !== home) show(`GET ${name} /app/read (direct)`, await get(portOf(name), '/app/read', cookie));

    say(`${home} is killed with SIGKILL (a crash: no goodbye)`);
    children.get(home)!.kill('SIGKILL');
    r = await get(front!, '/app/counter', cookie);
    show('GET /app/counter', r);
    process.stdout.write(
      `  the balancer found ${home} gone and sent the request to ${nodeOf(r.body)}: the count continued and the cookie now names ${nodeOf(r.body)}\n`,
    );
    const cookie2 = r.cookie ?? cookie;
    show('GET /app/counter', await get(front!, '/app/counter', cookie2));

    say(`${home} restarts: it takes the sessions from the others before it serves, then gets new clients`);
    await start(NAMES.indexOf(home));
    show(`GET ${home} /app/read (direct)`, await get(portOf(home), '/app/read', cookie2));
    await balancer.pool.checkAll();
    const fresh: string[] = [];
    for (let i = 0; i < 3; i++) fresh.push(nodeOf((await get(front!, '/app/health')).body));
    process.stdout.write(`  three new clients went to: ${fresh.join(', ')}\n`);

    say('an invalidation removes the session everywhere');
    show('GET /app/invalidate', await get(front!, '/app/invalidate', cookie2));
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (const name of NAMES) show(`GET ${name} /app/read (direct)`, await get(portOf(name), '/app/read', cookie2));

    if (options.exit) return;
    say(`the cluster keeps running behind ${url}/app/counter (Ctrl-C stops every node gracefully)`);
    process.stdout.write(
      [
        `  curl -i -c /tmp/clowder.jar ${url}/app/counter     # new session; the cookie names its node`,
        `  curl -b /tmp/clowder.jar ${url}/app/counter        # count=2, same node`,
        `  kill -9 <that node's pid: ${NAMES.map((n) => `${n} ${children.get(n)!.pid}`).join(', ')}>`,
        `  curl -i -b /tmp/clowder.jar ${url}/app/counter     # count=3 on another node, cookie re-issued for it`,
        '',
      ].join('\n'),
    );
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  } finally {
    say('stopping the balancer and every node gracefully');
    await balancer.stop();
    await stopAll();
    say('done');
  }
}
