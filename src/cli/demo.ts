/**
 * `clowder demo`: a local 3-node cluster on loopback that shows membership and failure handling.
 * It starts three `clowder channel` processes with one shared static member list, shows message
 * round trips, SIGKILLs one node and shows how fast the others drop it, restarts it as a new
 * member, stops one gracefully, then shuts everything down. All traffic stays on 127.0.0.1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

interface Line {
  node: string;
  event: string;
  at: number;
  [k: string]: unknown;
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

export async function runDemo(): Promise<void> {
  const ports = [await freePort(), await freePort(), await freePort()];
  const members = ports.map((p) => `127.0.0.1:${p}`).join(',');
  const names = ['node-a', 'node-b', 'node-c'];
  const children = new Map<string, ChildProcess>();
  const lines: Line[] = [];
  const say = (text: string) => process.stdout.write(`\n== ${text}\n`);

  const start = (i: number) => {
    const name = names[i]!;
    const child = spawn(
      process.execPath,
      [
        MAIN,
        'channel',
        '--json',
        '--name',
        name,
        '--cluster-port',
        String(ports[i]),
        '--membership',
        'static',
        '--members',
        members,
        '--ping-every',
        '1000',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.set(name, child);
    createInterface({ input: child.stdout! }).on('line', (text) => {
      try {
        const line = JSON.parse(text) as Line;
        lines.push(line);
        const { node, event, at: _at, ...rest } = line;
        const details = Object.entries(rest)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ');
        process.stdout.write(`  [${node}] ${event} ${details}\n`);
      } catch {
        process.stdout.write(`  ${text}\n`);
      }
    });
  };
  const waitUntil = async (what: string, ok: () => boolean, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const seen = (node: string, event: string, pred: (l: Line) => boolean = () => true, since = 0) =>
    lines.some((l) => l.node === node && l.event === event && l.at >= since && pred(l));

  try {
    say(`starting 3 nodes on 127.0.0.1 ports ${ports.join(', ')} (static membership, each given the same list)`);
    for (let i = 0; i < names.length; i++) start(i);
    await waitUntil('membership', () =>
      names.every((n) => lines.filter((l) => l.node === n && l.event === 'member-added').length >= 2),
    );
    say('every node sees the other two; each pings the others once a second (use_ack,sync round trips)');
    await waitUntil('round trips', () => names.every((n) => seen(n, 'round-trip')));

    say('SIGKILL node-c: no goodbye; the failure detector notices its connections reset and verifies');
    const killedAt = Date.now();
    children.get('node-c')!.kill('SIGKILL');
    await waitUntil('node-c dropped', () =>
      ['node-a', 'node-b'].every((n) => seen(n, 'member-removed', (l) => l.member === 'node-c', killedAt)),
    );
    for (const n of ['node-a', 'node-b']) {
      const l = lines.find(
        (x) => x.node === n && x.event === 'member-removed' && x.member === 'node-c' && x.at >= killedAt,
      )!;
      process.stdout.write(`  ${n} dropped node-c ${l.at - killedAt} ms after the kill (Tomcat's dropTime: 3000 ms)\n`);
    }

    say('restart node-c: a new process is a new member');
    const restartedAt = Date.now();
    start(2);
    await waitUntil('node-c back', () =>
      ['node-a', 'node-b'].every((n) => seen(n, 'member-added', (l) => l.member === 'node-c', restartedAt)),
    );

    say('stop node-b gracefully (SIGTERM): it says goodbye, the others drop it at once');
    const stoppedAt = Date.now();
    children.get('node-b')!.kill('SIGTERM');
    await waitUntil('node-b left', () =>
      seen('node-a', 'member-removed', (l) => l.member === 'node-b' && l.reason === 'leave', stoppedAt),
    );
  } finally {
    say('shutting down');
    for (const child of children.values())
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.all(
      Array.from(children.values(), (c) =>
        c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)),
      ),
    );
  }
  say('done');
}
