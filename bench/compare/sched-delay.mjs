// Where the replication lag's tail comes from: the kernel's scheduling delay of the processes in the
// lag probe. It runs `run.mjs --rows=lag --reps=1 --no-save` under `perf sched record -a` (Linux
// perf, root) until the first probe (n1 -> n2) is done, then reports, for the main thread of n1,
// n2, n3 and the probe client, how long each waited between being woken (data arrived on its socket)
// and running: `perf sched timehist`'s "sch delay", p50/p90/p99/max and the share over 1 ms.
// A delay there is time no code in the process can save: on a 2-core machine with the client and
// three nodes waking together, n2's p99 is at the replication lag's p99 (bench/README.md). It also
// sums what ran on the two cores while n2 waited over 1 ms: each process's main thread, its other
// threads (V8's compiler and GC helpers, libuv's pool), other tasks, and idle time (a core left
// idle while n2 waited is the kernel's placement, not load).
// The probe includes its warm-up (run.mjs --warmup), so the figures cover a cold start too.
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
const { stdout } = await run('perf', ['sched', 'timehist', '-i', data], { maxBuffer: 512 * 1024 * 1024 });
// One line per time a thread stopped running: time, [cpu], comm[tid] or comm[tid/pid], wait time,
// scheduling delay, run time (ms). Kept: when it ran, what it is, how long it waited before.
const roleOf = new Map([...pids].map(([role, pid]) => [String(pid), role]));
const runs = []; // [start s, end s, class]
const delays = new Map(); // role -> scheduling delays of its main thread (ms)
const waits = []; // n2's main thread, waits over 1 ms while the client probed: [from s, to s]
const clientPid = String(pids.get('client'));
let clientFrom = Infinity;
let clientTo = -Infinity;
for (const line of stdout.split('\n')) {
  const f = line.trim().split(/\s+/);
  if (f.length < 6 || !/^\d+\.\d+$/.test(f[0])) continue;
  const [end, delay, ran] = [Number(f[0]), Number(f.at(-2)), Number(f.at(-1))];
  if (f[2] === '<idle>') {
    runs.push([end - ran / 1000, end, 'idle core']);
    continue;
  }
  const m = /^(.*)\[(\d+)(?:\/(\d+))?\]$/.exec(f[2]);
  if (m === null) continue;
  const [tid, pid] = [m[2], m[3] ?? m[2]];
  const role = roleOf.get(pid);
  const main = tid === pid;
  runs.push([end - ran / 1000, end, role === undefined ? `other: ${m[1]}` : main ? role : `${role}, other threads`]);
  if (role !== undefined && main) {
    if (!delays.has(role)) delays.set(role, []);
    delays.get(role).push(delay);
    if (pid === clientPid) {
      clientFrom = Math.min(clientFrom, end - ran / 1000);
      clientTo = Math.max(clientTo, end);
    }
    if (role === 'n2' && delay > 1) waits.push([end - ran / 1000 - delay / 1000, end - ran / 1000]);
  }
}
for (const role of ['n1', 'n2', 'n3', 'client']) {
  const d = delays.get(role);
  if (d === undefined) {
    console.log(`${role}: not found`);
    continue;
  }
  const over = d.filter((x) => x > 1).length;
  console.log(
    `${role} (pid ${pids.get(role)}) scheduling delay after a wake-up, ${d.length} wake-ups: p50 ${percentile(d, 50)} ms, p90 ${percentile(d, 90)} ms, p99 ${percentile(d, 99)} ms, max ${Math.max(...d)} ms, over 1 ms ${((100 * over) / d.length).toFixed(1)} %`,
  );
}
// What held the two cores while n2 waited over 1 ms during the probe (warm-up included): each
// thread's run time inside those waits, summed.
runs.sort((x, y) => x[0] - y[0]);
const held = new Map();
const during = waits.filter(([from]) => from >= clientFrom && from <= clientTo);
for (const [from, to] of during) {
  let lo = 0;
  let hi = runs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (runs[mid][0] < from - 0.1) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < runs.length && runs[i][0] < to; i++) {
    const overlap = Math.min(runs[i][1], to) - Math.max(runs[i][0], from);
    if (overlap > 0) held.set(runs[i][2], (held.get(runs[i][2]) ?? 0) + overlap * 1000);
  }
}
const total = during.reduce((t, [from, to]) => t + (to - from) * 1000, 0);
console.log(
  `while n2 waited over 1 ms during the probe (${during.length} waits, ${total.toFixed(1)} ms; two cores, so up to ${(2 * total).toFixed(1)} ms of run time): ` +
    [...held]
      .sort((x, y) => y[1] - x[1])
      .slice(0, 8)
      .map(([what, ms]) => `${what} ${ms.toFixed(1)} ms`)
      .join(', '),
);
await rm(dir, { recursive: true, force: true });

/** Finds the lag cluster's n1, n2 and n3 (their BENCH_SERVER spec) and the probe client among running processes. */
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
        if ((name === 'n1' || name === 'n2' || name === 'n3') && !found.has(name)) found.set(name, Number(p));
      }
    } catch {
      // the process ended meanwhile
    }
  }
}
