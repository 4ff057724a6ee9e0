/**
 * Clowder nodes (the counter application) in child processes for the rejoin tests: start, stats,
 * peek at a session's count, cut and heal a test partition (test/fixtures/partition.ts), signals
 * (SIGSTOP/SIGCONT/SIGKILL). Kills only its own children, by PID.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/session-node.js', import.meta.url));

export interface SessionNodeOptions {
  port: number;
  domain: string;
  frequencyMs: number;
  dropTimeMs: number;
  verifyTimeoutMs?: number;
  /** The channel's detector.mode (default: the channel's default). */
  detector?: 'lifeguard' | 'swim' | 'off';
  sessions?: Record<string, unknown>;
}

interface Event {
  type: string;
  [k: string]: unknown;
}

export class SessionProcess {
  readonly child: ChildProcess;
  readonly events: Event[] = [];
  id = '';
  http = 0;
  exited = false;
  #seq = 0;
  readonly #pending = new Map<number, { resolve: (v: Event) => void; reject: (e: Error) => void }>();

  constructor(
    readonly name: string,
    options: SessionNodeOptions,
  ) {
    this.child = fork(FIXTURE, [JSON.stringify({ name, ...options })], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (m: Event) => {
      if (m.type === 'reply') {
        const p = this.#pending.get(m.seq as number);
        this.#pending.delete(m.seq as number);
        p?.resolve(m);
        return;
      }
      this.events.push(m);
      if (m.type === 'started') {
        this.id = m.id as string;
        this.http = m.http as number;
      }
    });
    this.child.on('exit', () => {
      this.exited = true;
      for (const p of this.#pending.values()) p.reject(new Error(`${name} exited`));
      this.#pending.clear();
    });
  }

  async started(timeoutMs = 15_000): Promise<this> {
    await waitFor(() => this.id !== '' || this.exited, `${this.name} to start`, { timeoutMs });
    if (!this.id) throw new Error(`${this.name} exited before starting`);
    return this;
  }

  /** Sends a command and resolves with its reply (rejects after `timeoutMs`: a frozen node does not answer). */
  call(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 5_000): Promise<Event> {
    const seq = ++this.#seq;
    return new Promise<Event>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(seq);
        reject(new Error(`${this.name}: no answer to ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(seq, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ cmd, seq, ...args });
    });
  }

  // biome-ignore lint/suspicious/noExplicitAny: the node's stats are JSON of many shapes
  async stats(): Promise<any> {
    return (await this.call('stats')).stats;
  }

  /** Members in this node's view. */
  async members(): Promise<number> {
    return (await this.stats()).channel.membership.members as number;
  }

  /** The count this node holds for session `id` (null: it holds no such session). */
  async peek(id: string): Promise<number | null> {
    return (await this.call('peek', { session: id })).count as number | null;
  }

  async cut(names: string[]): Promise<void> {
    await this.call('cut', { names });
  }

  async heal(): Promise<void> {
    await this.call('heal');
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.exited && this.child.pid !== undefined) process.kill(this.child.pid, signal);
  }

  /** SIGKILL (after SIGCONT, in case it is frozen) and wait for the exit. */
  async destroy(): Promise<void> {
    if (this.exited) return;
    this.signal('SIGKILL');
    await waitFor(() => this.exited, `${this.name} to exit`, { timeoutMs: 10_000 });
  }
}
