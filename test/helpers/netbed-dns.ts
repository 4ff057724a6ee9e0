/**
 * A DNS server inside the test bed: dnsmasq (Debian dnsmasq-base) run in host `k`'s namespace by
 * NetBed.spawnIn (so the bed's teardown kills it by PID), listening on that host's bed address,
 * port 53, serving only its own records: A records from a hosts file the test rewrites
 * (`setHosts` writes it and sends SIGHUP by PID, which makes dnsmasq re-read it).
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { dnsmasqBinary, dnsmasqMissing } from './dnsmasq.js';
import type { NetBed } from './netbed.js';
import { waitFor } from './wait.js';

export { dnsmasqMissing };

export class BedDns {
  readonly lines: string[] = [];
  readonly hostsFile: string;
  readonly child: ChildProcess;

  private constructor(
    bed: NetBed,
    readonly k: number,
    readonly domain: string,
    hosts: Record<string, readonly string[]>,
  ) {
    const bin = dnsmasqBinary();
    if (bin === undefined) throw new Error(dnsmasqMissing());
    this.hostsFile = join(bed.dir, 'dns-hosts');
    writeFileSync(this.hostsFile, hostsText(hosts));
    const address = bed.net.host(k).address;
    // `ip netns exec` execs dnsmasq: the child's PID is dnsmasq's (SIGHUP and teardown by PID).
    this.child = bed.spawnIn(k, bin, [
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      '--no-poll',
      '--port=53',
      `--listen-address=${address}`,
      '--bind-interfaces',
      `--local=/${domain}/`,
      `--addn-hosts=${this.hostsFile}`,
      '--log-facility=-',
      '--pid-file=',
      '--user=root',
    ]);
    createInterface({ input: this.child.stderr! }).on('line', (l) => this.lines.push(l));
  }

  /** Starts dnsmasq in host `k`'s namespace and waits until it has read its hosts file. */
  static async start(
    bed: NetBed,
    k: number,
    domain: string,
    hosts: Record<string, readonly string[]>,
  ): Promise<BedDns> {
    const d = new BedDns(bed, k, domain, hosts);
    await waitFor(() => d.child.exitCode !== null || d.reads() > 0, 'dnsmasq to read its hosts file', {
      timeoutMs: 5000,
    });
    if (d.child.exitCode !== null) throw new Error(`dnsmasq exited (${d.child.exitCode}):\n${d.lines.join('\n')}`);
    return d;
  }

  /** How many times dnsmasq has read the hosts file. */
  reads(): number {
    return this.lines.filter((l) => l.includes(`read ${this.hostsFile}`)).length;
  }

  /** Rewrites the hosts file and makes dnsmasq re-read it (SIGHUP by PID); resolves once it did. */
  async setHosts(hosts: Record<string, readonly string[]>): Promise<void> {
    const before = this.reads();
    writeFileSync(this.hostsFile, hostsText(hosts));
    process.kill(this.child.pid!, 'SIGHUP');
    await waitFor(() => this.reads() > before, 'dnsmasq to re-read its hosts file', { timeoutMs: 5000 });
  }
}

function hostsText(hosts: Record<string, readonly string[]>): string {
  const lines: string[] = [];
  for (const [name, addresses] of Object.entries(hosts)) for (const a of addresses) lines.push(`${a} ${name}`);
  return `${lines.join('\n')}\n`;
}
