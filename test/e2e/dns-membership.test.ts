/**
 * `clowder start --membership dns` against a real DNS server (dnsmasq on 127.0.0.1, started by
 * the test). A records: three nodes at 127.0.0.2-4 on one cluster port find each other through
 * one name and replicate a session; the name's records then change (hosts file rewritten,
 * SIGHUP): a node added to DNS is found, a node dropped from DNS but alive is kept, a node dropped
 * from DNS and killed is dropped. SRV records: nodes on ephemeral ports, started while the DNS
 * server is down, form one cluster once it answers. With a cluster key, as DNS membership requires.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Dnsmasq, dnsmasqMissing } from '../helpers/dnsmasq.js';
import { type CliProcess, COUNTER_APP, cleanEnv, destroyAll, fields, get, startNode } from '../helpers/node-process.js';
import { freePorts, waitFor } from '../helpers/wait.js';

const DOMAIN = 'clowder.test';
const NAME = `nodes.${DOMAIN}`;
const REFRESH_MS = 300;
const DROP_MS = 3000;

interface MembershipStats {
  members: number;
  dns?: {
    resolves: number;
    resolveErrors: number;
    emptyAnswers: number;
    refusedAddresses: number;
    listed: number;
    unlisted: number;
  };
}

interface ChannelStats {
  membership: MembershipStats;
  interceptors: { failureDetector: { falseAlarms: number; verifications: number } };
}

async function channelStats(n: CliProcess): Promise<ChannelStats> {
  const r = await get(`${n.url}/_clowder/stats`);
  assert.equal(r.status, 200, r.body);
  return (JSON.parse(r.body) as { channel: ChannelStats }).channel;
}

async function membership(n: CliProcess): Promise<MembershipStats> {
  return (await channelStats(n)).membership;
}

/** Names of the members `n` has in view, from its "member added"/"member removed" log lines. */
function view(n: CliProcess): Set<string> {
  const names = new Set<string>();
  for (const l of n.logs) {
    if (l.msg === 'member added') names.add(l.member as string);
    if (l.msg === 'member removed') names.delete(l.member as string);
  }
  return names;
}

const sameSet = (a: Set<string>, b: string[]) => a.size === b.length && b.every((x) => a.has(x));

describe('DNS membership with a real DNS server (dnsmasq)', { skip: dnsmasqMissing() }, () => {
  const procs: CliProcess[] = [];
  const servers: Dnsmasq[] = [];
  const dirs: string[] = [];
  after(async () => {
    await destroyAll(procs);
    for (const s of servers) await s.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const env = cleanEnv({ CLOWDER_CLUSTER_KEY: randomBytes(32).toString('base64'), CLOWDER_LOG_LEVEL: 'info' });

  /** A config file with a short refresh (the name and server come from the flags: both paths merge). */
  async function configFile(extra: Record<string, unknown> = {}): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'clowder-dns-'));
    dirs.push(dir);
    const file = join(dir, 'node.json');
    const membership = {
      type: 'dns',
      name: 'placeholder.invalid',
      refreshMs: REFRESH_MS,
      dropTimeMs: DROP_MS,
      ...extra,
    };
    await writeFile(file, JSON.stringify({ cluster: { membership } }));
    return file;
  }

  test('A records: form a cluster, replicate; a new address is found, an unlisted live member kept, a killed one dropped', async (t) => {
    const [cport] = await freePorts(1);
    const ip = (i: number) => `127.0.0.${i}`;
    const dns = await Dnsmasq.start({ domain: DOMAIN, hosts: { [NAME]: [ip(2), ip(3), ip(4)] } });
    servers.push(dns);
    const file = await configFile();
    const start = (name: string, i: number) => {
      const n = startNode(
        name,
        [
          '--config',
          file,
          '--name',
          name,
          '--host',
          '127.0.0.1',
          '--port',
          '0',
          '--cluster-host',
          ip(i),
          '--cluster-port',
          String(cport),
          '--membership',
          'dns',
          '--dns-name',
          NAME,
          '--dns-server',
          dns.server,
          '--app',
          `/app=${COUNTER_APP}`,
          '--json',
        ],
        env,
      );
      procs.push(n);
      return n;
    };

    const [a, b, c] = [start('a', 2), start('b', 3), start('c', 4)];
    await Promise.all([a.ready(), b.ready(), c.ready()]);
    const started = await a.waitLog((l) => l.msg === 'channel started', 'channel started');
    assert.equal(started.membership, 'dns');
    await waitFor(
      () => sameSet(view(a), ['b', 'c']) && sameSet(view(b), ['a', 'c']) && sameSet(view(c), ['a', 'b']),
      'a, b and c to see each other through DNS',
      { timeoutMs: 15_000 },
    );
    const s = await membership(a);
    assert.equal(s.members, 2);
    assert.deepEqual(
      { ...s.dns, resolves: 0 },
      {
        resolves: 0,
        resolveErrors: 0,
        emptyAnswers: 0,
        refusedAddresses: 0,
        listed: 3,
        unlisted: 0,
      },
    );

    // A session created on a continues on b and c (replicated to every member DNS found).
    const first = await get(`${a.url}/app/counter`);
    const cookie = first.session!;
    assert.equal(fields(first.body).count, '1');
    await waitFor(async () => fields((await get(`${b.url}/app/read`, cookie)).body).count === '1', 'b has the session');
    assert.equal(fields((await get(`${c.url}/app/counter`, cookie)).body).count, '2');

    // A new address in DNS: the node started there is found by every other node, and takes the sessions.
    await dns.setHosts({ [NAME]: [ip(2), ip(3), ip(4), ip(5)] });
    const d = start('d', 5);
    await d.ready();
    await waitFor(
      () => [a, b, c].every((n) => view(n).has('d')) && sameSet(view(d), ['a', 'b', 'c']),
      'everyone to see d',
      { timeoutMs: 15_000 },
    );
    await waitFor(async () => fields((await get(`${d.url}/app/read`, cookie)).body).count === '2', 'd has the session');
    // Found through DNS (d may also have been taken from its hello first): listed on every node.
    await waitFor(
      async () => {
        for (const n of [a, b, c, d]) {
          const m = await membership(n);
          if (m.dns?.listed !== 4 || m.dns.unlisted !== 0) return false;
        }
        return true;
      },
      'every node to list the four addresses',
      { timeoutMs: 10_000, intervalMs: 100 },
    );

    // c leaves DNS but stays alive (a failed readiness probe, a stale answer): nobody drops it.
    await dns.setHosts({ [NAME]: [ip(2), ip(3), ip(5)] });
    const unlistedEverywhere = async () => {
      for (const n of [a, b, d]) if ((await membership(n)).dns?.unlisted !== 1) return false;
      return true;
    };
    await waitFor(unlistedEverywhere, 'a, b and d to resolve the name without c', { timeoutMs: 10_000 });
    // Well past dropTime: more than (dropTime / refresh) + 2 further resolutions on each node.
    const from = await Promise.all([a, b, d].map(async (n) => (await membership(n)).dns!.resolves));
    const enough = Math.ceil(DROP_MS / REFRESH_MS) + 2;
    await waitFor(
      async () => {
        const now = await Promise.all([a, b, d].map(async (n) => (await membership(n)).dns!.resolves));
        return now.every((r, i) => r >= from[i]! + enough);
      },
      `${enough} more resolutions on a, b and d`,
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    for (const n of [a, b, d]) {
      assert.ok(view(n).has('c'), `${n.label} keeps c, which still answers`);
      const cs = await channelStats(n);
      assert.equal(cs.membership.dns!.unlisted, 1, `${n.label} still probes c`);
      // Not even suspected: c stayed in the membership table, no verification was needed.
      assert.equal(cs.interceptors.failureDetector.falseAlarms, 0, `${n.label}: no false alarm about c`);
    }
    assert.ok(!a.logs.some((l) => l.msg === 'member removed'), 'no member was removed');
    assert.equal(fields((await get(`${c.url}/app/counter`, cookie)).body).count, '3', 'c still serves and replicates');
    await waitFor(async () => fields((await get(`${a.url}/app/read`, cookie)).body).count === '3', 'a has c’s write');

    // c is killed: dropped by everyone (its connections reset, the failure detector confirms),
    // and its address is no longer probed once it stopped answering.
    const killedAt = Date.now();
    c.kill('SIGKILL');
    await waitFor(() => [a, b, d].every((n) => !view(n).has('c')), 'c dropped everywhere', { timeoutMs: 10_000 });
    t.diagnostic(`c dropped everywhere ${Date.now() - killedAt} ms after SIGKILL`);
    await waitFor(
      async () => {
        for (const n of [a, b, d]) if ((await membership(n)).dns?.unlisted !== 0) return false;
        return true;
      },
      "c's address retired on a, b and d",
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    assert.equal(fields((await get(`${b.url}/app/counter`, cookie)).body).count, '4', 'the session survives');
    for (const n of [a, b, d]) assert.equal((await membership(n)).dns!.resolveErrors, 0);
  });

  test('SRV records give the ports; nodes started while DNS is down form a cluster once it answers', async (t) => {
    const file = await configFile({ name: `_clowder._tcp.srv.${DOMAIN}` });
    // The DNS server's address is fixed first, then it is stopped, so the nodes start without DNS.
    const probe = await Dnsmasq.start({ domain: DOMAIN });
    const server = probe.server;
    await probe.stop();
    const nodes = ['x', 'y', 'z'].map((name) => {
      const n = startNode(
        name,
        [
          '--config',
          file,
          '--name',
          name,
          '--port',
          '0',
          '--cluster-port',
          '0',
          '--dns-server',
          server,
          '--app',
          `/app=${COUNTER_APP}`,
          '--json',
        ],
        env,
      );
      procs.push(n);
      return n;
    });
    await Promise.all(nodes.map((n) => n.ready()));
    // Alone, DNS failing: counted, the node serves.
    for (const n of nodes) assert.ok((await membership(n)).dns!.resolveErrors >= 1);
    assert.ok(nodes.every((n) => view(n).size === 0));
    const ports = nodes.map((n) => Number(n.readyLine!.cluster.split(':')[1]));
    const srvName = `_clowder._tcp.srv.${DOMAIN}`;
    const dns = await Dnsmasq.start({
      port: Number(server.split(':')[1]),
      domain: DOMAIN,
      records: [[`h.${DOMAIN}`, '127.0.0.1']],
      srv: ports.map((p) => [srvName, `h.${DOMAIN}`, p] as const),
    });
    servers.push(dns);
    const [x, y, z] = nodes as [CliProcess, CliProcess, CliProcess];
    await waitFor(
      () => sameSet(view(x), ['y', 'z']) && sameSet(view(y), ['x', 'z']) && sameSet(view(z), ['x', 'y']),
      'x, y and z to find each other through SRV records',
      { timeoutMs: 15_000 },
    );
    // Each node lists the three SRV addresses itself (a node may have been taken from its hello first).
    await waitFor(
      async () => {
        for (const n of nodes) if ((await membership(n)).dns?.listed !== 3) return false;
        return true;
      },
      'every node to list the three SRV addresses',
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    const s = await membership(x);
    const first = await get(`${x.url}/app/counter`);
    await waitFor(
      async () => fields((await get(`${z.url}/app/read`, first.session)).body).count === '1',
      'z has the session',
    );
    t.diagnostic(`DNS failures counted before the server came up: ${s.dns!.resolveErrors}`);
  });
});
