// The machine and the code a benchmark ran on: one schema for every harness's results.
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLK_TCK } from './proc.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A tool's version output (wrk -v exits 1 after printing it), or undefined when not installed. */
export function toolVersion(cmd, argv) {
  try {
    return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    if (err.code === 'ENOENT') return undefined;
    return `${err.stdout ?? ''}${err.stderr ?? ''}`;
  }
}

/** wrk's version line without its copyright. */
export const wrkLine = (v) =>
  (v ?? '')
    .split('\n')[0]
    .replace(/\s*Copyright.*/, '')
    .trim();

/** The code under test: git commit, whether src/ has uncommitted changes, when dist/ was built. */
function codeInfo() {
  const git = (...argv) => {
    try {
      return execFileSync('git', argv, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return undefined;
    }
  };
  const dirty = git('status', '--porcelain', '--untracked-files=all', '--', 'src');
  let distBuilt;
  try {
    distBuilt = statSync(join(root, 'dist', 'index.js')).mtime.toISOString();
  } catch {}
  return {
    commit: git('rev-parse', '--short', 'HEAD'),
    srcDirty: dirty === undefined ? undefined : dirty !== '',
    distBuilt,
  };
}

/**
 * CPU model, cores, memory, Node, kernel (platform), clock ticks, the load average now (call it at
 * the start), the code, and `tools` (e.g. { wrk, redis } versions). A harness with a Map-session
 * calibration row adds its req/s as `mapRps` once measured.
 */
export function machine(tools = {}) {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    ...tools,
    clkTck: CLK_TCK,
    loadavgAtStart: os.loadavg().map((x) => +x.toFixed(2)),
    code: codeInfo(),
  };
}

/** The machine as one line of a report. */
export function machineLine(info) {
  const tools = [info.wrk, info.redis?.replace(/ sha=\S+| malloc=\S+| bits=\S+| build=\S+/g, '')].filter(Boolean);
  const code = info.code
    ? ` Code: commit ${info.code.commit ?? '?'}${info.code.srcDirty ? ' with uncommitted changes in src/' : ''}, dist/ built ${info.code.distBuilt ?? '?'}.`
    : '';
  return (
    `${info.cpuModel}, ${info.cores} cores, ${info.memGiB} GiB, node ${info.node}, ${info.platform}` +
    `${tools.length ? `; ${tools.join('; ')}` : ''}; load average at start ${info.loadavgAtStart.join(' ')}` +
    `${info.mapRps !== undefined ? `; Map-session row ${Math.round(info.mapRps).toLocaleString('en-US')} req/s` : ''}.${code}`
  );
}
