// The compare harness's measurements beside the rows: the lag probe on several clusters and its
// floors, failure detection after a SIGKILL, state transfer to a joining node.
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePorts, kv, removeTemp, run, tempDir } from '../lib/proc.mjs';
import { printProfile, summarizeProfiles } from '../lib/profile.mjs';
import { fmt, fx } from '../lib/report.mjs';
import {
  APP,
  clowderStats,
  NAMES,
  newDomain,
  settle,
  startClowder,
  startMapReplicated,
  startServer,
  stopAll,
} from './cluster.mjs';
import { lagProbe as probe, READ_ONLY } from './lag.mjs';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The measurements of a run: `ctx` { client (the workload's client.mjs), sessions, warmupS,
 * transferSessions, payload, extras (the selected ids: lag, failover, transfer), log }.
 */
export function measurements({
  client,
  sessions: SESSIONS,
  warmupS: WARMUP_S,
  transferSessions: TRANSFER_SESSIONS,
  payload: PAYLOAD,
  extras: RUN_EXTRAS,
  log,
}) {
  /** Creates the probe's sessions on the first server (cookies into `file`); waits until they replicated. */
  async function lagSessions(servers, file, kind = { clowder: true }) {
    const mk = await client('mksessions', { port: servers[0].port, n: SESSIONS, out: file });
    if (mk.sessions !== SESSIONS) throw new Error(`mksessions made ${mk.sessions} of ${SESSIONS}`);
    await settle(servers, kind);
    return file;
  }

  /** The lag probe (lag.mjs) with this run's warm-up, logged here. */
  const lagProbe = (...a) => probe({ warmupS: WARMUP_S, log }, ...a);

  /** The lag probe (write on A, read on B) on a fresh async cluster of `n` nodes started with `options`. */
  async function lagOnCluster(tmp, tag, options, n = 3) {
    const nodes = await startClowder(n, 'async', { tag: `lag/${tag}`, visibleLog: true, ...options });
    try {
      const cookies = await lagSessions(nodes, join(tmp, `cookies-lag-${tag}.txt`));
      return await lagProbe(nodes[0].port, nodes[1].port, cookies, `A->B, ${tag}`, nodes[1]);
    } finally {
      await stopAll(nodes);
    }
  }

  async function runLagFailover(tmp) {
    const out = {};
    // /app/read declared read-only (sessions.readOnlyFilter), as an application with read endpoints
    // configures it: B serves the read from its replica without taking the session over, so the
    // probe measures how far replication trails the client's next request.
    const nodes = await startClowder(3, 'async', {
      tag: 'lag/failover',
      readOnlyFilter: READ_ONLY,
      visibleLog: true,
    });
    const [a, b, c] = nodes;
    try {
      if (RUN_EXTRAS.includes('lag')) {
        const cookies = await lagSessions(nodes, join(tmp, 'cookies-lag.txt'));
        out.lag = await lagProbe(a.port, b.port, cookies, 'A->B', b);
        // The floor: the same probe reading on A itself (no replication involved): what a read
        // right after a write costs on this machine at all.
        const floor = await lagProbe(a.port, a.port, cookies, 'A->A (floor)');
        out.lag.floorP50 = floor.p50;
        out.lag.floorP99 = floor.p99;
        // The machine's floors: the same probe against bare node:http (no sessions at all), reading
        // on the server written to, and on a second, idle one (as B is: its process must wake up).
        const barePorts = await freePorts(2);
        const bares = barePorts.map((port, i) =>
          startServer('bare.mjs', { name: `bare${i + 1}`, port }, { tag: 'lag-floor' }),
        );
        try {
          await Promise.all(bares.map((b) => b.ready));
          const b0 = await lagProbe(barePorts[0], barePorts[0], cookies, 'bare node:http, one server (machine floor)');
          out.lag.bareP50 = b0.p50;
          out.lag.bareP99 = b0.p99;
          const b2 = await lagProbe(
            barePorts[0],
            barePorts[1],
            cookies,
            'bare node:http, write on one, read on another',
          );
          out.lag.bare2P50 = b2.p50;
          out.lag.bare2P99 = b2.p99;
        } finally {
          await stopAll(bares);
        }
        // The floor of any replication between processes: a loopback message between two idle ones.
        const wake = await run(process.execPath, [join(here, 'wake-floor.mjs'), '--n', 2000], 60_000);
        if (wake.code !== 0) throw new Error(`wake-floor.mjs failed (${wake.code}): ${wake.stderr}`.trim());
        const wakeLine = wake.stdout.trim().split('\n').pop();
        log(`lag floor, one loopback message between two idle processes: ${wakeLine}`);
        out.lag.wake = kv(wakeLine);
        // The replication floor: Map session servers that push each change to their peers and do
        // nothing else (map-peers.mjs), the same probe and the same visibility log.
        const maps = await startMapReplicated(3, { tag: 'lag-floor-map', visibleLog: true });
        try {
          const mc = await lagSessions(maps, join(tmp, 'cookies-lag-map.txt'), { replicated: true });
          out.lag.map = await lagProbe(maps[0].port, maps[1].port, mc, 'Map sessions pushing to 2 peers', maps[1]);
        } finally {
          await stopAll(maps);
        }
        // The same probe where /app/read is an ordinary request: B takes the session over from A
        // (ACQUIRE/GRANT) before it reads, and A takes it back for the next write.
        out.lag.handover = await lagOnCluster(tmp, 'hand-over', {});
        // ownership none (Tomcat's behaviour): every request is served from the local replica.
        out.lag.none = await lagOnCluster(tmp, 'ownership-none', { ownership: 'none' });
        // Two nodes, /app/read read-only: on this 2-core machine a third node waking up to apply
        // each write competes with the client and B for the cores; this shows how much that costs.
        out.lag.two = await lagOnCluster(tmp, 'read-only-2-nodes', { readOnlyFilter: READ_ONLY }, 2);
      }
      if (RUN_EXTRAS.includes('failover')) {
        const watchers = [a, b];
        const base = await Promise.all(
          watchers.map(async (p) => (await clowderStats(p.port)).channel.membership.members),
        );
        const t0 = performance.now();
        c.kill('SIGKILL');
        const seen = await Promise.all(
          watchers.map(async (p, i) => {
            const deadline = t0 + 15_000;
            let polls = 0;
            while (performance.now() < deadline) {
              const tick = performance.now();
              polls++;
              const st = await clowderStats(p.port);
              if (st.channel.membership.members < base[i]) return { node: p.name, ms: performance.now() - t0, polls };
              const wait = 5 - (performance.now() - tick);
              if (wait > 0) await sleep(wait);
            }
            return { node: p.name, ms: NaN, polls, timedOut: true };
          }),
        );
        out.failover = {
          killed: c.name,
          detect: seen,
          maxMs: Math.max(...seen.map((s) => s.ms)),
          pollMs: 5,
        };
        log(
          `failure detection after SIGKILL of ${c.name}: ${seen.map((s) => `${s.node} ${fx(s.ms, 1)} ms`).join(', ')}`,
        );
      }
    } finally {
      await stopAll(nodes);
    }
    return out;
  }

  async function runTransfer(profile) {
    const ports = await freePorts(4);
    const domain = newDomain();
    const members = [`127.0.0.1:${ports[1]}`, `127.0.0.1:${ports[3]}`];
    const spec = (i) => ({
      name: NAMES[i],
      port: ports[2 * i],
      clusterPort: ports[2 * i + 1],
      members,
      domain,
      send: 'async',
      app: APP,
    });
    const profDirs = profile ? [0, 1].map((i) => tempDir(`clowder-compare-prof-transfer-${NAMES[i]}-`)) : [];
    const execArgv = (i) => (profile ? ['--cpu-prof', `--cpu-prof-dir=${profDirs[i]}`] : []);
    const a = startServer('clowder.mjs', spec(0), { tag: 'transfer', execArgv: execArgv(0) });
    const nodes = [a];
    let out;
    try {
      await a.ready;
      const filled = await a.call('fill', { n: TRANSFER_SESSIONS, payload: PAYLOAD }, 300_000);
      log(`transfer: A holds ${fmt(filled.sessions)} sessions (filled in ${fmt(filled.ms)} ms); starting B`);
      const b = startServer('clowder.mjs', spec(1), { tag: 'transfer', execArgv: execArgv(1) });
      nodes.push(b);
      const ready = await b.ready;
      const st = (await clowderStats(b.port)).sessions[0].stateTransfer;
      out = {
        sessions: TRANSFER_SESSIONS,
        fillMs: filled.ms,
        startMs: ready.startMs,
        forkToReadyMs: b.readyAt - b.forkedAt,
        transferMs: st.durationMs,
        state: st.state,
        received: st.sessions,
        bytes: st.bytes,
        chunks: st.chunks,
      };
      out.complete = out.state === 'done' && out.received === TRANSFER_SESSIONS;
      log(
        `transfer: B stateTransfer ${fmt(out.transferMs)} ms (${out.state}, ${fmt(out.received)} sessions, ` +
          `${fmt(out.bytes / 1048576, 1)} MiB, ${out.chunks} chunks); B start() -> ready ${fmt(out.startMs)} ms`,
      );
    } finally {
      await stopAll(nodes);
      if (profile) {
        const profiles = {};
        for (const [i, dir] of profDirs.entries()) {
          try {
            profiles[`${NAMES[i]} (${i === 0 ? 'donor: fill, then send' : 'joiner'})`] = summarizeProfiles(dir, 12);
          } catch {}
          removeTemp(dir);
        }
        if (out) out.profile = profiles;
      }
    }
    if (out?.profile) {
      for (const [who, p] of Object.entries(out.profile)) {
        console.log(`  top self time, transfer ${who} (${p.sampledS} s sampled):`);
        printProfile(p, console.log);
      }
    }
    return out;
  }

  return { runLagFailover, runTransfer };
}
