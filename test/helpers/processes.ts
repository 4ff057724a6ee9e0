/** Starts channel nodes as child processes and tracks what they report. Kills only its own children, by PID. */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/channel-node.js', import.meta.url));

export interface NodeEvent {
  type: string;
  [k: string]: unknown;
}

export class NodeProcess {
  readonly events: NodeEvent[] = [];
  readonly child: ChildProcess;
  id = '';
  port = 0;
  exited = false;

  /** @param env - extra environment variables for the child (on top of this process's) */
  constructor(
    readonly name: string,
    config: Record<string, unknown>,
    env: Record<string, string> = {},
  ) {
    this.child = fork(FIXTURE, [JSON.stringify({ name, ...config })], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, ...env },
    });
    this.child.on('message', (m: NodeEvent) => {
      this.events.push(m);
      if (m.type === 'started') {
        this.id = m.id as string;
        this.port = m.port as number;
      }
    });
    this.child.on('exit', () => {
      this.exited = true;
    });
  }

  async started(timeoutMs = 10_000): Promise<this> {
    await waitFor(() => this.id !== '' || this.exited, `${this.name} to start`, { timeoutMs });
    if (!this.id) throw new Error(`${this.name} exited before starting`);
    return this;
  }

  /** Names of the members this node currently sees (from its added/removed events). */
  members(): Set<string> {
    const ids = new Map<string, string>();
    for (const e of this.events) {
      if (e.type === 'added') ids.set(e.id as string, e.name as string);
      if (e.type === 'removed') ids.delete(e.id as string);
    }
    return new Set(ids.values());
  }

  memberIds(): Set<string> {
    const ids = new Set<string>();
    for (const e of this.events) {
      if (e.type === 'added') ids.add(e.id as string);
      if (e.type === 'removed') ids.delete(e.id as string);
    }
    return ids;
  }

  command(msg: Record<string, unknown>): void {
    this.child.send(msg);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.exited && this.child.pid !== undefined) process.kill(this.child.pid, signal);
  }

  /**
   * Graceful stop; a node that does not exit within 15 s is killed (no process is left behind)
   * and the stop rejects: a hung stop is a failure to report, not to hide.
   */
  async stop(): Promise<void> {
    if (this.exited) return;
    this.command({ cmd: 'stop' });
    try {
      await waitFor(() => this.exited, `${this.name} to exit after its stop`, { timeoutMs: 15_000 });
    } catch (err) {
      this.kill();
      await waitFor(() => this.exited, `${this.name} to exit after SIGKILL`);
      throw err;
    }
  }
}

/** Kills every still-running node (test cleanup, also on failure); rejects if one does not exit. */
export async function killAll(nodes: NodeProcess[]): Promise<void> {
  for (const n of nodes) n.kill();
  await waitFor(() => nodes.every((n) => n.exited), 'nodes to exit after SIGKILL');
}
