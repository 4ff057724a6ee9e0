// Where the replication lag's tail comes from: the kernel's scheduling delay of the processes in the
// lag probe. It runs `run.mjs --rows=lag --reps=1 --no-save` under `perf sched record -a` (Linux
// perf, root) until the first probe (n1 -> n2) is done, then reports, for the main thread of n1,
// n2 and the probe client, how long each waited between being woken (data arrived on its socket)
// and running: `perf sched timehist`'s "sch delay", p50/p90/p99/max and the share over 1 ms.
// A delay there is time no code in the process can save: on a 2-core machine with the client and
// three nodes waking together, n2's p99 is at the replication lag's p99 (bench/README.md).
// usage: node bench/compare/sched-delay.mjs   (after npm run build; needs perf: apt-get install linux-perf)
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { percentile } from '../lib/stats.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const run = promisify(execFile);

try {
  await run('perf', ['--version']);
} catch {
  console.error('sched-delay.mjs needs Linux perf: apt-get install -y linux-perf (and root for perf sched record)');
  process.exit(2);
}

const dir = await mkdtemp(join(tmpdir(), 'clowder-sched-'));
const data = join(dir, 'sched.data');
// Ends by itself after 120 s at the latest; normally stopped (SIGINT, by PID) once the probe is done.
const perf = spawn('perf', ['sched', 'record', '-a', '-o', data, '--', 'sleep', '120'], { stdio: 'ignore' });
const bench = spawn(process.execPath, [join(here, 'run.mjs'), '--rows=lag', '--reps=1', '--no-save'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const pids = new Map(); // role -> pid
let out = '';
// The client lives only while it probes: look for it (and the nodes) every 100 ms.
const poll = setInterval(() => void findRoles(pids), 100);
try {
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the first lag probe did not finish within 100 s')), 100_000);
    bench.on('exit', (code) => reject(new Error(`run.mjs exited (${code}) before its first lag probe`)));
    bench.stdout.on('data', (d) => {
      out += d;
      if (/lag A->B/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
} finally {
  clearInterval(poll);
  if (perf.exitCode === null) {
    perf.kill('SIGINT');
    await once(perf, 'exit');
  }
  if (bench.exitCode === null) {
    bench.kill('SIGTERM'); // run.mjs stops the servers it started on SIGTERM
    await once(bench, 'exit');
  }
}
console.log(out.split('\n').find((l) => l.includes('lag A->B')));
for (const role of ['n1', 'n2', 'client']) {
  const pid = pids.get(role);
  if (pid === undefined) {
    console.log(`${role}: not found`);
    continue;
  }
  const { stdout } = await run('perf', ['sched', 'timehist', '-i', data, '-p', String(pid)], {
    maxBuffer: 256 * 1024 * 1024,
  });
  const delays = [];
  for (const line of stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[2] === `node[${pid}]`) delays.push(Number(f[4])); // the main thread only: its event loop
  }
  const over = delays.filter((x) => x > 1).length;
  console.log(
    `${role} (pid ${pid}) scheduling delay after a wake-up, ${delays.length} wake-ups: p50 ${percentile(delays, 50)} ms, p90 ${percentile(delays, 90)} ms, p99 ${percentile(delays, 99)} ms, max ${Math.max(...delays)} ms, over 1 ms ${((100 * over) / delays.length).toFixed(1)} %`,
  );
}
await rm(dir, { recursive: true, force: true });

/** Finds the lag cluster's n1 and n2 (their BENCH_SERVER spec) and the probe client among running processes. */
async function findRoles(found) {
  for (const p of await readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = await readFile(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.includes('lag-client.mjs')) found.set('client', Number(p));
      else if (cmd.includes('servers/clowder.mjs')) {
        const env = await readFile(`/proc/${p}/environ`, 'utf8');
        const spec = env.split('\0').find((e) => e.startsWith('BENCH_SERVER='));
        const name = spec && JSON.parse(spec.slice('BENCH_SERVER='.length)).name;
        if ((name === 'n1' || name === 'n2') && !found.has(name)) found.set(name, Number(p));
      }
    } catch {
      // the process ended meanwhile
    }
  }
}
