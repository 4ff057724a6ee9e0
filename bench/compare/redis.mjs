// The Redis rows' redis-server: started by the harness on its own free loopback port, its own
// temporary directory, no persistence; killed by PID afterwards (a system service is never used).
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { live } from '../lib/proc.mjs';
import { waitUntil } from '../lib/wait.mjs';

/** One PING over a fresh connection: true on +PONG. */
function ping(port) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.setTimeout(500, () => s.destroy());
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      got += d;
      if (got.includes('\r\n')) s.end();
    });
    s.on('close', () => resolve(got.startsWith('+PONG')));
    s.on('error', () => {});
  });
}

export class RedisProc {
  constructor(port, dir) {
    this.port = port;
    this.name = 'redis';
    this.output = '';
    const argv = ['--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'yes', '--save', ''];
    argv.push('--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--logfile', '', '--databases', '1');
    this.child = spawn('redis-server', argv, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.child);
    this.pid = this.child.pid;
    const keep = (d) => {
      this.output = (this.output + d).slice(-4000);
    };
    this.child.stdout.on('data', keep);
    this.child.stderr.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        live.delete(this.child);
        resolve(code ?? signal);
      });
      this.child.on('error', (err) => {
        live.delete(this.child);
        this.output += err.message;
        resolve(-1);
      });
    });
  }

  /** Resolves once the server answers PING. */
  async ready(timeoutMs = 10_000) {
    await waitUntil(async () => this.child.exitCode !== null || (await ping(this.port)), {
      timeoutMs,
      intervalMs: 50,
    }).catch(() => {});
    if (this.child.exitCode !== null || !(await ping(this.port)))
      throw new Error(`redis-server on port ${this.port} did not answer PING: ${this.output}`);
  }

  /** SIGTERM, SIGKILL after 5 s. */
  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      process.kill(this.pid, 'SIGTERM');
    } catch {}
    const exited = await Promise.race([this.exited.then(() => true), sleep(5000).then(() => false)]);
    if (!exited) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {}
      await this.exited;
    }
  }
}
