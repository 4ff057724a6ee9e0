/**
 * Runs the real `clowder start` CLI in child processes for end-to-end tests: spawns it, reads its
 * stdout lines (the `--json` ready line) and its stderr log lines (pino JSON, parsed where
 * possible), and stops it (SIGTERM, then SIGKILL after a deadline). Kills only its own children,
 * by PID. Also a minimal HTTP GET with a cookie, and a check that a port is free.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs from .test-build/test/helpers/). */
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** The built CLI. */
export const CLI = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
/** The counter example application. */
export const COUNTER_APP = fileURLToPath(new URL('../../../examples/counter/app.mjs', import.meta.url));

/** `{"event":"ready",...}` as printed by `clowder start --json`. */
export interface ReadyLine {
  event: 'ready';
  node: string;
  http: string;
  cluster: string;
}

/** One stderr line: a pino record when it parsed as JSON, else `{ msg: <raw line> }`. */
export interface LogLine {
  level?: number;
  time?: number;
  msg?: string;
  /** When the test process read the line. */
  receivedAt: number;
  [k: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The environment of the test process without any CLOWDER_* variable, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CLOWDER_')) env[k] = v;
  return { ...env, ...extra };
}

/** A `clowder` CLI child process. */
export class CliProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly startedAt = Date.now();
  readonly stdout: { line: string; receivedAt: number }[] = [];
  readonly logs: LogLine[] = [];
  /** The stderr lines as written (a key written twice shows here, not in `logs`). */
  readonly rawLogs: string[] = [];
  readyLine: ReadyLine | undefined;
  /** When the ready line was read. */
  readyAt = 0;
  exit: Exit | undefined;
  exitedAt = 0;
  readonly #exited: Promise<Exit>;
  readonly #waiters = new Set<() => void>();

  /**
   * @param wrap - a command that execs the CLI (e.g. `['ip', 'netns', 'exec', NS]`, test/helpers/netbed.ts);
   *   it must exec, not fork, so that `pid` is the node's own
   * @param cli - the CLI entry to run (default: this build's; e.g. another build's dist/cli/main.js,
   *   test/helpers/variant-build.ts)
   */
  constructor(
    readonly label: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv = cleanEnv(),
    wrap: readonly string[] = [],
    cli: string = CLI,
  ) {
    const argv = [...wrap.slice(1), process.execPath, cli, ...args];
    this.child = spawn(wrap[0] ?? process.execPath, wrap.length > 0 ? argv : [cli, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
      cwd: REPO,
    });
    if (this.child.pid === undefined) throw new Error(`${label}: could not spawn the CLI`);
    this.pid = this.child.pid;
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const receivedAt = Date.now();
      this.stdout.push({ line, receivedAt });
      if (this.readyLine === undefined && line.startsWith('{')) {
        try {
          const v = JSON.parse(line) as ReadyLine;
          if (v.event === 'ready') {
            this.readyLine = v;
            this.readyAt = receivedAt;
          }
        } catch {
          // not the ready line
        }
      }
      this.#notify();
    });
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      const receivedAt = Date.now();
      this.rawLogs.push(line);
      let rec: LogLine;
      try {
        const v = JSON.parse(line) as unknown;
        rec =
          v !== null && typeof v === 'object' && !Array.isArray(v)
            ? { ...(v as Record<string, unknown>), receivedAt }
            : { msg: line, receivedAt };
      } catch {
        rec = { msg: line, receivedAt };
      }
      this.logs.push(rec);
      this.#notify();
    });
    this.#exited = new Promise<Exit>((resolve) => {
      // 'close': the process exited and its stdio streams are fully read.
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal };
        this.exitedAt = Date.now();
        this.#notify();
        resolve(this.exit);
      });
    });
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Resolves when `check` returns a value (re-checked on every output line and on exit); rejects at the deadline. */
  #until<T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.#waiters.delete(probe);
        fn();
      };
      const probe = () => {
        let v: T | undefined;
        try {
          v = check();
        } catch (err) {
          finish(() => reject(err));
          return;
        }
        if (v !== undefined) finish(() => resolve(v as T));
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(new Error(`${this.label}: timed out after ${timeoutMs} ms waiting for ${what}\n${this.tail()}`)),
          ),
        timeoutMs,
      );
      this.#waiters.add(probe);
      probe();
    });
  }

  /** The ready line; rejects if the process exits first or at the deadline. */
  ready(timeoutMs = 15_000): Promise<ReadyLine> {
    return this.#until(
      () => {
        if (this.readyLine) return this.readyLine;
        if (this.exit)
          throw new Error(`${this.label} exited (${JSON.stringify(this.exit)}) before ready\n${this.tail()}`);
        return undefined;
      },
      'the ready line',
      timeoutMs,
    );
  }

  /** The first log line matching `match`; rejects at the deadline. */
  waitLog(match: (l: LogLine) => boolean, what: string, timeoutMs = 15_000): Promise<LogLine> {
    return this.#until(() => this.logs.find(match), `log line: ${what}`, timeoutMs);
  }

  /** Log lines with this message. */
  logsWith(msg: string): LogLine[] {
    return this.logs.filter((l) => l.msg === msg);
  }

  /** The HTTP base URL from the ready line. */
  get url(): string {
    if (!this.readyLine) throw new Error(`${this.label} is not ready`);
    return this.readyLine.http;
  }

  get running(): boolean {
    return this.exit === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends `signal` to this child (by PID) if it still runs. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.running) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }

  /** Resolves with the exit status; rejects at the deadline. */
  exited(timeoutMs = 10_000): Promise<Exit> {
    if (this.exit) return Promise.resolve(this.exit);
    return this.#until(() => this.exit, 'exit', timeoutMs);
  }

  /** Graceful stop: SIGTERM, wait for exit; SIGKILL after `timeoutMs`. Returns the exit status. */
  async stop(timeoutMs = 10_000): Promise<Exit> {
    if (this.exit) return this.exit;
    this.kill('SIGTERM');
    try {
      return await this.exited(timeoutMs);
    } catch {
      this.kill('SIGKILL');
      return this.#exited;
    }
  }

  /** SIGKILL and wait for the exit (cleanup). */
  async destroy(): Promise<void> {
    if (this.exit) return;
    this.kill('SIGKILL');
    await this.#exited;
  }

  /** The last lines of output, for failure messages. */
  tail(n = 15): string {
    const out = this.stdout.slice(-5).map((l) => `  stdout: ${l.line}`);
    const err = this.logs.slice(-n).map((l) => `  stderr: ${typeof l.msg === 'string' ? l.msg : ''} ${rest(l)}`);
    return [...out, ...err].join('\n');
  }
}

function rest(l: LogLine): string {
  const { level: _l, time: _t, msg: _m, receivedAt: _r, pid: _p, hostname: _h, name: _n, ...others } = l;
  return Object.keys(others).length > 0 ? JSON.stringify(others) : '';
}

/** Starts `clowder start <args>`; track the result to stop it in after(). */
export function startNode(label: string, args: readonly string[], env?: NodeJS.ProcessEnv): CliProcess {
  return new CliProcess(label, ['start', ...args], env);
}

/** Runs the CLI to completion (for commands that must fail fast). SIGKILLs it after `timeoutMs`. */
export async function runCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv = cleanEnv(),
  timeoutMs = 10_000,
): Promise<Exit & { stdout: string; stderr: string; ms: number }> {
  const p = new CliProcess(`clowder ${args.join(' ')}`, args, env);
  let exit: Exit;
  try {
    exit = await p.exited(timeoutMs);
  } finally {
    await p.destroy();
  }
  return {
    ...exit,
    stdout: p.stdout.map((l) => l.line).join('\n'),
    stderr: p.logs.map((l) => (typeof l.msg === 'string' ? l.msg : JSON.stringify(l))).join('\n'),
    ms: p.exitedAt - p.startedAt,
  };
}

/** Stops every given process (SIGKILL), waiting for each to exit. For after(), also after failures. */
export async function destroyAll(procs: readonly CliProcess[]): Promise<void> {
  await Promise.all(procs.map((p) => p.destroy()));
}

export interface Response {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  /** The JSESSIONID value set by this response (`<id>.<route>`), '' when it deletes it, undefined when none. */
  session: string | undefined;
}

/** GET `url` with an optional `JSESSIONID=<cookie>`; no keep-alive (a stopping node closes nothing in use). */
export function get(url: string, cookie?: string, timeoutMs = 5_000): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'GET', agent: false, headers: cookie ? { cookie: `JSESSIONID=${cookie}` } : {}, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            headers: res.headers,
            session: sessionCookie(res.headers['set-cookie']),
          }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** The JSESSIONID value in Set-Cookie headers. */
export function sessionCookie(setCookie: string[] | undefined): string | undefined {
  for (const c of setCookie ?? []) {
    const m = /^JSESSIONID=([^;]*)/.exec(c);
    if (m) return m[1];
  }
  return undefined;
}

/** `key=value` pairs of a counter-app body, e.g. `count=3 node=A id=…`. */
export function fields(body: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of body.trim().split(/\s+/)) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** True when nothing listens on 127.0.0.1:`port` (we can bind it). */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
