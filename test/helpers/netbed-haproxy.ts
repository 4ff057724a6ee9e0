/**
 * HAProxy in the test bed: the shipped examples/haproxy/haproxy.cfg, adapted to the bed (listen
 * on a bed host's address, the servers at the nodes' addresses and named after them, a stats
 * socket in the bed's directory for the test to read server states), run in a host's namespace
 * with the bed's admin token in its environment (its health checks carry it, as the example says).
 */

import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { NetBed } from './netbed.js';
import { REPO } from './node-process.js';
import { waitFor } from './wait.js';

/** The example's node names, in the order of its servers. */
const EXAMPLE_NAMES = ['node-a', 'node-b', 'node-c'] as const;

/**
 * The example config for the bed: `listen` for the frontend, `servers[i]` (name, address:port)
 * for the example's node i. Throws when the example no longer has what is rewritten.
 */
export function haproxyConfigFor(
  text: string,
  listen: string,
  servers: readonly { name: string; address: string }[],
  statsSocket: string,
): string {
  const replace = (from: string | RegExp, to: string) => {
    const next = text.replace(from, to);
    if (next === text) throw new Error(`examples/haproxy/haproxy.cfg: ${from} not found`);
    text = next;
  };
  replace(/^(\s*bind\s+)127\.0\.0\.1:8080\b/m, `$1${listen}`);
  for (const [i, name] of EXAMPLE_NAMES.entries()) {
    const s = servers[i]!;
    replace(new RegExp(`^(\\s*server\\s+)${name}\\s+127\\.0\\.0\\.1:808${i + 1}\\b`, 'm'), `$1${s.name} ${s.address}`);
    replace(
      `use-server ${name} if { req.cook(JSESSIONID) -m end .${name} }`,
      `use-server ${s.name} if { req.cook(JSESSIONID) -m end .${s.name} }`,
    );
  }
  replace(/^global\n/m, `global\n    stats socket ${statsSocket} mode 600 level user\n`);
  return text;
}

/** HAProxy running in a bed host's namespace, in front of the bed's nodes. */
export class BedHaproxy {
  readonly child: ChildProcess;
  readonly output: string[] = [];

  private constructor(
    readonly bed: NetBed,
    readonly k: number,
    readonly socket: string,
  ) {
    const file = join(bed.dir, 'haproxy.cfg');
    const servers = bed.hosts.map((h) => ({ name: h.name, address: `${h.address}:8080` }));
    const cfg = haproxyConfigFor(
      readFileSync(join(REPO, 'examples/haproxy/haproxy.cfg'), 'utf8'),
      `${bed.net.host(k).address}:8080`,
      servers,
      socket,
    );
    writeFileSync(file, cfg);
    this.child = bed.spawnIn(k, 'env', [`CLOWDER_ADMIN_TOKEN=${bed.adminToken}`, 'haproxy', '-db', '-f', file]);
    for (const s of [this.child.stdout!, this.child.stderr!])
      createInterface({ input: s }).on('line', (l) => this.output.push(l));
  }

  /** Starts HAProxy on host `k` (a host without a node) and waits until it sees every node up. */
  static async start(bed: NetBed, k: number): Promise<BedHaproxy> {
    const h = new BedHaproxy(bed, k, join(bed.dir, 'haproxy-stats.sock'));
    await h.waitUp(
      bed.hosts.map((x) => x.name),
      'HAProxy to see every node up',
    );
    return h;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** `show stat` on the stats socket: one record per proxy/server row, by column name. */
  async stat(): Promise<Record<string, string>[]> {
    const text = await new Promise<string>((resolve, reject) => {
      const s = connect(this.socket);
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        out += d;
      });
      s.on('end', () => resolve(out));
      s.on('error', reject);
      s.end('show stat\n');
    });
    const [header, ...rows] = text.trim().split('\n');
    const cols = header!.replace(/^# /, '').split(',');
    return rows.map((row) => {
      const f = row.split(',');
      return Object.fromEntries(cols.map((c, i) => [c, f[i] ?? '']));
    });
  }

  /** Server name → HAProxy's status (UP, DOWN, UP 1/2 while going down, …). */
  async states(): Promise<Map<string, string>> {
    return new Map((await this.stat()).map((r) => [r.svname!, r.status!]));
  }

  /** Waits until HAProxy reports every server in `names` UP. */
  async waitUp(names: readonly string[], what: string, timeoutMs = 15_000): Promise<void> {
    await waitFor(
      async () => {
        if (!this.running) throw new Error(`haproxy exited:\n${this.output.join('\n')}`);
        try {
          const s = await this.states();
          return names.every((n) => s.get(n) === 'UP');
        } catch {
          return false; // not listening yet
        }
      },
      what,
      { timeoutMs, intervalMs: 20 },
    );
  }
}
