/**
 * The network of the multi-host test bed: N network namespaces ("hosts") h1..hN, each with one
 * interface eth0 and its own address 10.77.0.K/24, joined by a bridge that lives in a namespace
 * of its own (the "hub"). Nothing is created or changed in the host's namespace: no address, no
 * route, no firewall rule. Faults are nftables rules on the hub's bridge (family bridge), so they
 * act like a switch: silent drops, no error for the sender.
 *
 * Namespace names carry the owner's PID (`clowderbed-<pid>-<run>-h1`): a run never collides with
 * another, and `sweepStale()` deletes what a crashed run left (its PID is gone), killing the
 * processes still inside. Needs root, iproute2 and nftables.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PREFIX = 'clowderbed';
/** Namespace names of the bed: owner PID, run id, role (hK or br). */
const NAME = /^clowderbed-(\d+)-([a-z0-9]+)-(h\d+|br)$/;
/** The private range, used only inside the bed's namespaces (every bed has its own bridge). */
export const SUBNET = '10.77.0';
/** nftables table on the hub for partitions and loss. */
const TABLE = 'clowderbed';

/** Runs a command; rejects with its stderr. */
export function run(cmd: string, args: readonly string[], input?: string, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** Runs a command synchronously, ignoring failure (cleanup paths, exit handlers). */
function runSync(cmd: string, args: readonly string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
  } catch {
    return '';
  }
}

/** Why the bed cannot run here, or undefined when it can (root, `ip netns` works, nft installed). */
export async function bedUnavailable(needs: readonly string[] = ['nft']): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'the network-namespace test bed needs Linux';
  if (process.getuid?.() !== 0) return 'the network-namespace test bed needs root (ip netns, nft)';
  const probe = `${PREFIX}-${process.pid}-probe${Math.random().toString(36).slice(2, 6)}-br`;
  try {
    await run('ip', ['netns', 'add', probe]);
  } catch (err) {
    return `ip netns does not work here: ${(err as Error).message}`;
  } finally {
    runSync('ip', ['netns', 'del', probe]);
  }
  for (const tool of needs) {
    try {
      await run(tool, ['--version']);
    } catch {
      return `${tool} is not installed (.ci/run installs it with apt-get)`;
    }
  }
  return undefined;
}

/** The bed's namespaces that exist now: name, owner PID, run id. */
export function listBedNamespaces(): { name: string; pid: number; run: string }[] {
  const out: { name: string; pid: number; run: string }[] = [];
  for (const line of runSync('ip', ['netns', 'list']).split('\n')) {
    const name = line.trim().split(/\s+/)[0] ?? '';
    const m = NAME.exec(name);
    if (m) out.push({ name, pid: Number(m[1]), run: m[2]! });
  }
  return out;
}

/** True when `pid` runs (a zombie, killed but not yet reaped by its parent, does not). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/PID/stat: "pid (comm) S ..."; the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Kills the processes inside namespace `ns` (by PID; they were started there by a bed) and deletes it. */
export function deleteNamespaceSync(ns: string): void {
  for (const pid of runSync('ip', ['netns', 'pids', ns]).split('\n')) {
    if (/^\d+$/.test(pid.trim())) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  runSync('ip', ['netns', 'del', ns]);
}

/**
 * Deletes the namespaces of bed runs whose owner process is gone (a crashed or killed run), or of
 * every run with `all` (the CLI's `down --all`). Returns the names deleted.
 */
export function sweepStale(all = false): string[] {
  const stale = (pid: number) => all || (pid !== process.pid && !alive(pid));
  const gone = listBedNamespaces().filter((n) => stale(n.pid));
  for (const n of gone) deleteNamespaceSync(n.name);
  // The beds' temp directories (config files, sockets, captures): `clowderbed-<pid>-XXXXXX`.
  for (const name of readdirSync(tmpdir())) {
    const m = /^clowderbed-(\d+)-[A-Za-z0-9]{6}$/.exec(name);
    if (m && stale(Number(m[1]))) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
  return gone.map((n) => n.name);
}

/** One host of the bed: its name (h1), namespace, address, and the name of its link on the bridge. */
export interface BedHostNet {
  name: string;
  ns: string;
  address: string;
  link: string;
}

/** One bed network: the hub namespace with the bridge, and one namespace per host. */
export class BedNetwork {
  readonly run = Math.random().toString(36).slice(2, 8);
  readonly hub = `${PREFIX}-${process.pid}-${this.run}-br`;
  readonly hosts: BedHostNet[];
  #created: string[] = [];

  constructor(n: number) {
    if (!Number.isInteger(n) || n < 1 || n > 200) throw new Error(`a bed of 1 to 200 hosts, not ${n}`);
    this.hosts = Array.from({ length: n }, (_, i) => ({
      name: `h${i + 1}`,
      ns: `${PREFIX}-${process.pid}-${this.run}-h${i + 1}`,
      address: `${SUBNET}.${i + 1}`,
      link: `h${i + 1}`,
    }));
  }

  /** Namespaces created so far (for cleanup). */
  get namespaces(): readonly string[] {
    return this.#created;
  }

  /** Creates the namespaces, the bridge and the links; on failure deletes what it made. */
  async up(): Promise<void> {
    sweepStale();
    try {
      await this.#add(this.hub);
      // No multicast snooping: the bridge floods multicast to every port, as a plain switch does.
      await run('ip', ['-n', this.hub, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0']);
      await run('ip', ['-n', this.hub, 'link', 'set', 'br0', 'up']);
      for (const h of this.hosts) {
        await this.#add(h.ns);
        await run('ip', ['-n', this.hub, 'link', 'add', h.link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns]);
        await run('ip', ['-n', this.hub, 'link', 'set', h.link, 'master', 'br0', 'up']);
        await run('ip', ['-n', h.ns, 'link', 'set', 'lo', 'up']);
        await run('ip', ['-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0']);
        await run('ip', ['-n', h.ns, 'link', 'set', 'eth0', 'up']);
      }
    } catch (err) {
      this.downSync();
      throw err;
    }
  }

  async #add(ns: string): Promise<void> {
    await run('ip', ['netns', 'add', ns]);
    this.#created.push(ns);
  }

  /** Runs `cmd` inside host `k`'s namespace (1-based). */
  exec(k: number, cmd: string, args: readonly string[], input?: string): Promise<string> {
    return run('ip', ['netns', 'exec', this.host(k).ns, cmd, ...args], input);
  }

  host(k: number): BedHostNet {
    const h = this.hosts[k - 1];
    if (!h) throw new Error(`no host h${k} in a bed of ${this.hosts.length}`);
    return h;
  }

  /** Applies an nftables script in the hub. */
  async #nft(script: string): Promise<void> {
    await run('ip', ['netns', 'exec', this.hub, 'nft', '-f', '-'], script);
  }

  /**
   * Splits the hosts into two sides that cannot reach each other (drops on the bridge, both ways,
   * multicast included); hosts on one side still reach each other. Replaces an earlier split.
   */
  async split(a: readonly number[], b: readonly number[]): Promise<void> {
    const ports = (side: readonly number[]) => `{ ${side.map((k) => `"${this.host(k).link}"`).join(', ')} }`;
    await this.#nft(
      `table bridge ${TABLE}\ndelete table bridge ${TABLE}\n` +
        `table bridge ${TABLE} {\n` +
        '  chain cut {\n    type filter hook forward priority 0; policy accept;\n' +
        `    iifname ${ports(a)} oifname ${ports(b)} drop\n` +
        `    iifname ${ports(b)} oifname ${ports(a)} drop\n  }\n` +
        `${this.#lossChain}}\n`,
    );
    this.#cut = [a, b];
  }

  /** Cuts host `k` off from every other host. */
  cut(k: number): Promise<void> {
    return this.split(
      [k],
      this.hosts.map((_, i) => i + 1).filter((i) => i !== k),
    );
  }

  /** Removes the split (keeps loss). */
  async heal(): Promise<void> {
    this.#cut = undefined;
    await this.#nft(
      `table bridge ${TABLE}\ndelete table bridge ${TABLE}\ntable bridge ${TABLE} {\n${this.#lossChain}}\n`,
    );
  }

  #cut: [readonly number[], readonly number[]] | undefined;
  #loss = new Map<number, number>();

  get #lossChain(): string {
    if (this.#loss.size === 0) return '';
    const rules = [...this.#loss].map(([k, pct]) => {
      const p = this.host(k).link;
      return `    iifname "${p}" numgen random mod 100 < ${pct} counter drop\n    oifname "${p}" numgen random mod 100 < ${pct} counter drop\n`;
    });
    return `  chain loss {\n    type filter hook forward priority -10; policy accept;\n${rules.join('')}  }\n`;
  }

  /**
   * Drops `percent` % of the frames host `k` sends and, independently, of those it receives
   * (0 removes the loss). Delay: NetBed.delay (no netem here).
   */
  async loss(k: number, percent: number): Promise<void> {
    if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new Error(`loss: 0-100 %, not ${percent}`);
    this.host(k);
    if (percent === 0) this.#loss.delete(k);
    else this.#loss.set(k, percent);
    const cut = this.#cut;
    if (cut) await this.split(cut[0], cut[1]);
    else await this.heal();
  }

  /** Frames dropped so far by the loss rules (proof that the loss is applied). */
  async lossDropped(): Promise<number> {
    if (this.#loss.size === 0) return 0;
    const text = await run('ip', ['netns', 'exec', this.hub, 'nft', 'list', 'chain', 'bridge', TABLE, 'loss']);
    return [...text.matchAll(/counter packets (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
  }

  /** The hub's rule set (for failure messages and the CLI). */
  rules(): Promise<string> {
    return run('ip', ['netns', 'exec', this.hub, 'nft', 'list', 'ruleset']);
  }

  /** Deletes every namespace of this bed (killing what still runs inside). Synchronous: safe in exit handlers. */
  downSync(): void {
    for (const ns of this.#created.splice(0).reverse()) deleteNamespaceSync(ns);
  }
}
