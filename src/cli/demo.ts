/**
 * `clowder demo`: a local 3-node cluster of the counter application on 127.0.0.1 — three
 * `clowder start` processes with one shared static member list — and a failover walk-through:
 * a session made on node-a survives node-a's SIGKILL on node-b, node-a comes back holding it,
 * and an invalidation on one node removes it everywhere. Then it keeps running and prints curl
 * commands to try by hand, until Ctrl-C (or exits at once with --exit).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

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
  const http = await ports([8081, 8082, 8083]);
  const cluster = await ports([4001, 4002, 4003]);
  const members = cluster.map((p) => `127.0.0.1:${p}`).join(',');
  const children = new Map<string, ChildProcess>();
  const say = (text: string) => process.stdout.write(`\n== ${text}\n`);
  const show = (label: string, r: { body: string; cookie?: string }) =>
    process.stdout.write(`  ${label.padEnd(34)} → ${r.body}${r.cookie ? `   (Set-Cookie: ${r.cookie})` : ''}\n`);

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

  try {
    say('starting a 3-node cluster of the counter application on 127.0.0.1 (static membership, one shared list)');
    // One after the other, as the HOW-TO does: each takes the sessions of those already running.
    for (let i = 0; i < NAMES.length; i++) await start(i);
    const [a, b, c] = http as [number, number, number];

    say('a session is created on node-a and updated; every node holds it');
    let r = await get(a, '/app/counter');
    show('GET node-a /app/counter', r);
    const cookie = r.cookie!;
    for (let i = 0; i < 2; i++) show('GET node-a /app/counter', await get(a, '/app/counter', cookie));
    show('GET node-b /app/read', await get(b, '/app/read', cookie));
    show('GET node-c /app/read', await get(c, '/app/read', cookie));

    say('node-a is killed with SIGKILL (a crash: no goodbye)');
    children.get('node-a')!.kill('SIGKILL');
    r = await get(b, '/app/counter', cookie);
    show('GET node-b /app/counter', r);
    process.stdout.write(
      '  node-b took over: the count continued and the cookie now names node-b (the route binder)\n',
    );
    const cookieB = r.cookie ?? cookie;

    say('node-a restarts: it takes the sessions from the others before it serves');
    await start(0);
    show('GET node-a /app/read', await get(a, '/app/read', cookieB));

    say('an invalidation on one node removes the session everywhere');
    show('GET node-c /app/invalidate', await get(c, '/app/invalidate', cookieB));
    await new Promise((resolve) => setTimeout(resolve, 100));
    show('GET node-a /app/read', await get(a, '/app/read', cookieB));
    show('GET node-b /app/read', await get(b, '/app/read', cookieB));

    if (options.exit) return;
    say('the cluster keeps running: try it yourself (Ctrl-C stops every node gracefully)');
    process.stdout.write(
      [
        `  curl -i -c /tmp/clowder.jar http://127.0.0.1:${a}/app/counter          # new session on node-a`,
        `  curl -b /tmp/clowder.jar http://127.0.0.1:${a}/app/counter             # count=2`,
        `  curl -b /tmp/clowder.jar http://127.0.0.1:${b}/app/read                # node-b has it too`,
        `  kill -9 <node-a's pid: ${children.get('node-a')!.pid}>                         # crash node-a`,
        `  curl -i -b /tmp/clowder.jar http://127.0.0.1:${c}/app/counter          # count=3 on node-c, cookie re-issued for node-c`,
        '',
      ].join('\n'),
    );
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  } finally {
    say('stopping every node gracefully');
    await stopAll();
    say('done');
  }
}
