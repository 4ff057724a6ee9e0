// Process helpers shared by the benchmark harnesses. Every child a harness starts goes into `live`
// (worker.mjs's forkWorker, run() here), so that `reap()` can end exactly those, by PID.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';

/** Every process this run started and has not seen exit: killed by PID on the way out. */
export const live = new Set();

export function reap() {
  for (const child of live) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {}
  }
  live.clear();
}

/** Temporary directories of this run: removed by removeTemp, or on the way out (installReaper). */
const tempDirs = new Set();

export function tempDir(prefix) {
  const d = mkdtempSync(join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

export function removeTemp(d) {
  rmSync(d, { recursive: true, force: true });
  tempDirs.delete(d);
}

/**
 * On exit, on SIGINT/SIGTERM/SIGHUP and on an uncaught exception: kills every live child by its
 * PID and removes the temporary directories. `name` prefixes the message printed on a signal.
 */
export function installReaper(name) {
  process.on('exit', () => {
    reap();
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      console.error(`\n${name}: ${sig}: killing every process this run started`);
      reap();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (err) => {
    console.error(err);
    reap();
    process.exit(1);
  });
}

/** `n` distinct free loopback ports (all held open at once, then released). */
export async function freePorts(n) {
  const servers = [];
  for (let i = 0; i < n; i++) {
    const s = createServer();
    await new Promise((r, j) => s.once('error', j).listen(0, '127.0.0.1', r));
    servers.push(s);
  }
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Runs a command to completion (killed by PID after timeoutMs); resolves { code, stdout, stderr }. */
export function run(cmd, argv, timeoutMs, env = process.env) {
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {}
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code: -1, stdout, stderr: `${stderr}${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code: code ?? signal, stdout, stderr });
    });
  });
}

/** key=value pairs of a line (numbers as numbers). */
export const kv = (line) =>
  Object.fromEntries(
    (line ?? '')
      .trim()
      .split(/\s+/)
      .filter((p) => p.includes('='))
      .map((p) => {
        const k = p.slice(0, p.indexOf('='));
        const v = p.slice(p.indexOf('=') + 1);
        return [k, v !== '' && !Number.isNaN(Number(v)) ? Number(v) : v];
      }),
  );

/** A runner for the shared workload's client.mjs: `client(sub, opts)` → its last line as key=values (+ `line`). */
export function workloadClient(clientPath) {
  return async function client(sub, opts, timeoutMs = 60_000) {
    const argv = [clientPath, sub];
    for (const [k, v] of Object.entries(opts)) argv.push(`--${k}`, String(v));
    const r = await run(process.execPath, argv, timeoutMs);
    if (r.code !== 0) throw new Error(`client.mjs ${sub} failed (${r.code}): ${r.stdout} ${r.stderr}`.trim());
    const line = r.stdout.trim().split('\n').pop();
    return { ...kv(line), line };
  };
}

/** Read and write system calls of a process so far (/proc/<pid>/io: syscr, syscw). */
export function syscalls(pid) {
  const io = kv(readFileSync(`/proc/${pid}/io`, 'utf8').replace(/: /g, '='));
  return { r: io.syscr, w: io.syscw };
}

export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** Resident set size of a process, in bytes. */
export function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+)\s*kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** Machine-wide jiffies (all CPUs): busy (every task, steal excluded), stolen by the hypervisor, total. */
export function machineTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const steal = f[7] ?? 0;
  return { total, steal, busy: total - f[3] - (f[4] ?? 0) - steal };
}
