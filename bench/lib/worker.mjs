// Child processes of the benchmark harnesses, both sides of one IPC protocol:
//   harness: forkWorker(script, …) → a Worker: `ready` (the child's { type: 'ready' } message),
//            call(cmd, params, timeoutMs) → the child's answer ({ id, ok: true, … }) or a rejection
//            (its error, its exit, or the timeout), stop() (a command and/or a signal, SIGKILL after
//            a grace period); every worker is in proc.mjs's `live` until it exits, so reap() kills it
//            by PID on the way out, also on a failure or Ctrl-C.
//   worker:  serveCommands(handlers) answers { id, cmd, … } with { id, ok: true, …handlers[cmd](m) }
//            or { id, ok: false, error }; reportReady / reportFailed tell the harness how start went.
import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { live } from './proc.mjs';

/** A forked child with an IPC command channel (see forkWorker). */
class Worker {
  #waiting = new Map();
  #nextId = 1;

  constructor(script, { name, tag = name, execArgv = [], env = process.env, cwd, capture = false, readyTimeoutMs }) {
    this.name = name;
    this.tag = tag;
    /** The last 4000 characters the child wrote (capture), for error messages. */
    this.output = '';
    this.forkedAt = performance.now();
    this.child = fork(script, [], {
      cwd,
      env,
      execArgv,
      stdio: ['ignore', capture ? 'pipe' : 'inherit', capture ? 'pipe' : 'inherit', 'ipc'],
    });
    live.add(this.child);
    this.pid = this.child.pid;
    if (capture) {
      const keep = (d) => {
        this.output = (this.output + d).slice(-4000);
      };
      this.child.stdout.on('data', keep);
      this.child.stderr.on('data', keep);
    }
    const who = tag === name ? name : `${tag} ${name}`;
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        live.delete(this.child);
        for (const w of this.#waiting.values()) w.reject(new Error(`${who} exited (${code ?? signal})`));
        this.#waiting.clear();
        resolve(code ?? signal);
      });
    });
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${who} not ready within ${readyTimeoutMs} ms ${this.output}`.trim())),
        readyTimeoutMs,
      );
      this.child.on('message', (m) => {
        if (m?.type === 'ready') {
          clearTimeout(timer);
          this.readyAt = performance.now();
          resolve(m);
        } else if (m?.type === 'failed') {
          clearTimeout(timer);
          reject(new Error(`${who} failed to start: ${m.error}`));
        } else if (m?.id !== undefined) {
          const w = this.#waiting.get(m.id);
          if (!w) return;
          this.#waiting.delete(m.id);
          if (m.ok) w.resolve(m);
          else w.reject(new Error(`${who}: ${m.error}`));
        }
      });
      this.exited.then((c) => {
        clearTimeout(timer);
        reject(new Error(`${who} exited (${c}) before it was ready ${this.output}`.trim()));
      });
    });
    this.ready.catch(() => {});
    this.who = who;
  }

  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends { id, cmd, ...params }; resolves with the answer, rejects on error, exit or timeout. */
  call(cmd, params = {}, timeoutMs = 30_000) {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`${this.who} did not answer ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, cmd, ...params });
    });
  }

  kill(signal = 'SIGKILL') {
    try {
      process.kill(this.pid, signal);
    } catch {}
  }

  /**
   * Ends the child: `command` (answered, then the child exits by itself) or `signal` (SIGTERM: a
   * graceful stop), then SIGKILL if it has not exited after `graceMs`.
   */
  async stop({ command, signal, graceMs = 5000 } = {}) {
    if (!this.running) return;
    if (command) await this.call(command, {}, graceMs).catch(() => {});
    if (signal) this.kill(signal);
    const exited = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!exited) {
      this.kill('SIGKILL');
      await this.exited;
    }
  }
}

/**
 * Forks `script` with an IPC channel. Options: name (in messages), tag (the row), execArgv, env,
 * cwd, capture (keep the child's stdout/stderr for error messages instead of inheriting them),
 * readyTimeoutMs (60 s).
 */
export function forkWorker(script, { readyTimeoutMs = 60_000, ...options } = {}) {
  return new Worker(script, { readyTimeoutMs, ...options });
}

/** Stops every worker at once (see Worker.stop), never throwing. */
export async function stopAll(workers, options) {
  await Promise.all(workers.map((w) => w.stop(options).catch(() => {})));
}

// ---- the worker's side --------------------------------------------------------------------------

/**
 * Answers the harness's commands ({ id, cmd, … } over IPC) with `handlers[cmd](message)`, whose
 * result (or promise of one) is merged into { id, ok: true }; an unknown command or a throw gives
 * { id, ok: false, error }. With `exitOnDisconnect` (default) the process exits when its parent
 * goes away, so nothing outlives a run.
 */
export function serveCommands(handlers, { exitOnDisconnect = true } = {}) {
  if (typeof process.send !== 'function') throw new Error('this script is forked by a benchmark harness (IPC)');
  if (exitOnDisconnect) process.on('disconnect', () => process.exit(0));
  process.on('message', async (m) => {
    if (m?.id === undefined) return;
    const h = handlers[m.cmd];
    try {
      if (h === undefined) throw new Error(`unknown command ${m.cmd}`);
      process.send({ id: m.id, ok: true, ...(await h(m)) });
    } catch (err) {
      process.send({ id: m.id, ok: false, error: err?.stack ?? String(err) });
    }
  });
}

/** Tells the harness the worker is ready (`extra` is merged into the message). */
export function reportReady(extra = {}) {
  process.send?.({ type: 'ready', pid: process.pid, ...extra });
}

/** Tells the harness the worker failed to start, then exits 1. */
export function reportFailed(err) {
  process.send?.({ type: 'failed', error: err?.stack ?? String(err) });
  setImmediate(() => process.exit(1));
}
