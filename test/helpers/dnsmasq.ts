/**
 * A real DNS server for tests: dnsmasq (Debian dnsmasq-base; .ci/run installs it), started in the
 * foreground on 127.0.0.1 at a free port, serving only its own records (no upstream, no
 * /etc/hosts, no config file): A records from a hosts file the test rewrites (`setHosts` writes it
 * and sends SIGHUP, which makes dnsmasq re-read it), SRV and fixed A records from its command
 * line. Stopped by its PID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { waitFor } from './wait.js';

/** The dnsmasq binary, or undefined when it is not installed. */
export function dnsmasqBinary(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin']) {
    const p = join(dir || '.', 'dnsmasq');
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Why DNS tests skip here, or undefined when they can run. */
export function dnsmasqMissing(): string | undefined {
  return dnsmasqBinary() === undefined
    ? 'dnsmasq is not installed (Debian: apt-get install dnsmasq-base; .ci/run installs it)'
    : undefined;
}

export interface DnsmasqOptions {
  /** Names answered as "no such name" unless listed (dnsmasq's --local=/domain/). */
  readonly domain: string;
  /** Initial hosts file: name → addresses. */
  readonly hosts?: Record<string, readonly string[]>;
  /** SRV records: [srv name, target, port]. */
  readonly srv?: readonly (readonly [string, string, number])[];
  /** Fixed A records: [name, address]. */
  readonly records?: readonly (readonly [string, string])[];
  /** The port to serve on (default: a free one). */
  readonly port?: number;
}

export class Dnsmasq {
  readonly lines: string[] = [];
  #exited = false;

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly dir: string,
    readonly hostsFile: string,
  ) {
    createInterface({ input: child.stderr! }).on('line', (l) => this.lines.push(l));
    child.once('exit', () => {
      this.#exited = true;
    });
  }

  /** "127.0.0.1:port", as `--dns-server` and `membership.servers` take it. */
  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return !this.#exited;
  }

  static async start(options: DnsmasqOptions): Promise<Dnsmasq> {
    const bin = dnsmasqBinary();
    if (bin === undefined) throw new Error(dnsmasqMissing());
    const dir = await mkdtemp(join(tmpdir(), 'clowder-dnsmasq-'));
    const hostsFile = join(dir, 'hosts');
    await writeFile(hostsFile, hostsText(options.hosts ?? {}));
    // A free port can be taken between the probe and dnsmasq's bind: try a few.
    let lastError = '';
    for (let attempt = 0; attempt < (options.port === undefined ? 5 : 1); attempt++) {
      const port = options.port ?? (await freeUdpPort());
      const args = [
        '--keep-in-foreground',
        '--conf-file=/dev/null',
        '--no-resolv',
        '--no-hosts',
        '--no-poll',
        `--port=${port}`,
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
        `--local=/${options.domain}/`,
        `--addn-hosts=${hostsFile}`,
        '--log-facility=-',
        '--pid-file=',
        `--user=${userInfo().username}`,
        ...(options.srv ?? []).map(([name, target, p]) => `--srv-host=${name},${target},${p}`),
        ...(options.records ?? []).map(([name, address]) => `--host-record=${name},${address}`),
      ];
      const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      const d = new Dnsmasq(child, port, dir, hostsFile);
      try {
        await waitFor(() => !d.running || d.reads() > 0, 'dnsmasq to read its hosts file', { timeoutMs: 5000 });
      } catch (err) {
        await d.stop();
        throw err;
      }
      if (d.running) return d;
      lastError = d.lines.join('\n');
    }
    await rm(dir, { recursive: true, force: true });
    throw new Error(`dnsmasq did not start:\n${lastError}`);
  }

  /** How many times dnsmasq has read the hosts file. */
  reads(): number {
    return this.lines.filter((l) => l.includes(`read ${this.hostsFile}`)).length;
  }

  /** Rewrites the hosts file and makes dnsmasq re-read it (SIGHUP by PID); resolves once it did. */
  async setHosts(hosts: Record<string, readonly string[]>): Promise<void> {
    const before = this.reads();
    await writeFile(this.hostsFile, hostsText(hosts));
    process.kill(this.child.pid!, 'SIGHUP');
    await waitFor(() => this.reads() > before, 'dnsmasq to re-read its hosts file', { timeoutMs: 5000 });
  }

  /** Stops dnsmasq by its PID and removes its directory. */
  async stop(): Promise<void> {
    if (this.running && this.child.pid !== undefined) {
      process.kill(this.child.pid, 'SIGTERM');
      await waitFor(() => !this.running, 'dnsmasq to exit', { timeoutMs: 5000 }).catch(() => {
        if (this.running) process.kill(this.child.pid!, 'SIGKILL');
      });
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

function hostsText(hosts: Record<string, readonly string[]>): string {
  const lines: string[] = [];
  for (const [name, addresses] of Object.entries(hosts)) for (const a of addresses) lines.push(`${a} ${name}`);
  return `${lines.join('\n')}\n`;
}

/** A UDP port free on 127.0.0.1 now (bound and released). */
function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
