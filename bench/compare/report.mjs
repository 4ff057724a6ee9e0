// The compare harness's results: one per row from its rounds (ratios within each round, medians),
// the targets (PASS/MISS/info) and the markdown tables.
import { printProfile } from '../lib/profile.mjs';
import { fmt, fx, mdTable, reportHead, targetList } from '../lib/report.mjs';
import { median } from '../lib/stats.mjs';
import { LAG_SIDES, READ_ONLY, visibleText } from './lag.mjs';

const REDIS_ROWS = ['express-redis', 'express-redis2', 'fastify-redis'];

/** Sets each result's x Map / x Redis against the Map row and the fastest Redis row of the same list. */
export function addRatios(results) {
  const { map, fastestRedis } = fastestRefs(results);
  const mapBatched = results.find((r) => r.row === 'map-batched');
  const mapReplicated = results.find((r) => r.row === 'map-replicated');
  for (const r of results) {
    r.xMapBatched = mapBatched ? r.rps / mapBatched.rps : NaN;
    r.xMapReplicated = mapReplicated ? r.rps / mapReplicated.rps : NaN;
    r.xMap = map ? r.rps / map.rps : NaN;
    r.xRedis = fastestRedis ? r.rps / fastestRedis.rps : NaN;
  }
  return { map, fastestRedis };
}

/** The Map row and the fastest Redis row of aggregated results (for naming the references). */
export function fastestRefs(results) {
  const map = results.find((r) => r.row === 'map');
  const redis = results.filter((r) => REDIS_ROWS.includes(r.row));
  return { map, fastestRedis: redis.length ? redis.reduce((a, b) => (b.rps > a.rps ? b : a)) : undefined };
}

/**
 * One result per row from its rounds (ratios already set per round): the median round's figures,
 * with req/s and the ratios replaced by medians, and the worst round's lost increments and errors.
 */
export function aggregate(runs) {
  const ok = runs.filter((r) => !r.na);
  if (ok.length === 0) return { ...runs[runs.length - 1], rounds: runs };
  const byRps = [...ok].sort((a, b) => a.rps - b.rps);
  const out = { ...byRps[(byRps.length - 1) >> 1] };
  out.rounds = runs;
  out.rps = median(ok.map((r) => r.rps));
  out.xMap = median(ok.map((r) => r.xMap));
  out.xMapBatched = median(ok.map((r) => r.xMapBatched));
  out.xMapReplicated = median(ok.map((r) => r.xMapReplicated));
  out.xRedis = median(ok.map((r) => r.xRedis));
  out.errors = Math.max(...ok.map((r) => r.errors));
  if (ok.every((r) => r.lost !== undefined)) {
    const worst = ok.reduce((a, b) => (b.lost > a.lost ? b : a));
    out.lost = worst.lost;
    out.rawDiff = worst.rawDiff;
    // The exact figure (clowder rows): its worst round.
    if (ok.every((r) => r.lostExact !== undefined)) {
      const exact = ok.reduce((a, b) => (b.lostExact > a.lostExact ? b : a));
      out.lostExact = exact.lostExact;
      out.served = exact.served;
    }
  }
  if (ok.some((r) => r.replicasAgree === false)) {
    const bad = ok.find((r) => r.replicasAgree === false);
    out.replicasAgree = false;
    out.replicaSums = bad.replicaSums;
  }
  if (ok.length < runs.length) out.failedRounds = runs.length - ok.length;
  return out;
}

export function targets(results, extras, refs) {
  const t = [];
  const add = (name, pass, detail) => t.push({ name, pass, detail });
  const row = (id) => results.find((r) => r.row === id);
  const { map, fastestRedis } = refs;
  const as = row('clowder-async');
  const off = row('clowder-off');
  const sy = row('clowder-sync');
  const redisName = fastestRedis ? `${fastestRedis.row} ${fmt(fastestRedis.rps)}` : '';
  if (as && fastestRedis)
    add(
      'clowder async 3 nodes >= 2 x fastest Redis row',
      as.xRedis >= 2,
      `${fx(as.xRedis)} x (${fmt(as.rps)} vs ${redisName} req/s)`,
    );
  if (as && map) add('clowder async 3 nodes >= 0.6 x Map sessions', as.xMap >= 0.6, `${fx(as.xMap)} x`);
  if (off && map) add('clowder replication off >= 0.9 x Map sessions', off.xMap >= 0.9, `${fx(off.xMap)} x`);
  const mb = row('map-batched');
  if (mb && (as || off))
    add(
      'like for like: against map-batched (the Map server ending responses at the end of the turn, as clowder does)',
      null,
      [off && `replication off ${fx(off.xMapBatched)} x`, as && `async 3 nodes ${fx(as.xMapBatched)} x`]
        .filter(Boolean)
        .join(', '),
    );
  const mr = row('map-replicated');
  if (mr && as)
    add(
      'like for like: async 3 nodes against map-replicated (Map servers pushing each change to their peers, no ownership, no checks)',
      null,
      `${fx(as.xMapReplicated)} x (${fmt(as.rps)} vs ${fmt(mr.rps)} req/s; map-replicated lost ${mr.lost} increments${mr.replicasAgree === false ? ' and its replicas differ' : ''}, clowder ${as.lost})`,
    );
  if (sy && fastestRedis)
    add('clowder sync 3 nodes >= 1.2 x fastest Redis row', sy.xRedis >= 1.2, `${fx(sy.xRedis)} x`);
  for (const r of results.filter((x) => x.row.startsWith('clowder'))) {
    const agree = r.replicasAgree !== false;
    add(
      `0 lost increments: ${r.row}`,
      r.lost === 0 && (r.lostExact ?? 0) === 0 && agree,
      `${r.lost} lost (raw after-before-increments ${r.rawDiff}; ran-counted, worst round: ${r.lostExact} of ${r.served} run)${agree ? '' : `; replica sums differ: ${r.replicaSums.join('/')}`}`,
    );
  }
  if (extras.lag) {
    const v = extras.lag.visible;
    const floor = extras.lag.map?.visible;
    add(
      'replication lag p99 <= 1 ms (async 3 nodes, /app/read read-only: the write on n1 visible on n2 within 1 ms of the client having its answer, p99; >= 99 % of immediate reads on n2 fresh)',
      v !== undefined && v.p99 <= 1 && v.missing === 0 && extras.lag.stalePct <= 1 && extras.lag.errors === 0,
      `visible on n2 p50 ${v?.p50} / p99 ${v?.p99} ms, ${v?.missing} never seen${extras.lag.visibleCold ? `; cold, the warm-up's first probes: p99 ${extras.lag.visibleCold.p99} ms` : ''}${floor ? ` (the replication floor, Map servers pushing to their peers: p50 ${floor.p50} / p99 ${floor.p99} ms)` : ''}${extras.lag.wake ? `; a loopback message between two idle processes: p50 ${extras.lag.wake.p50} / p99 ${extras.lag.wake.p99} ms` : ''}; the client's read on n2 right after: ${fx(extras.lag.stalePct, 1)} % stale, p50 ${extras.lag.p50} / p99 ${extras.lag.p99} ms (that read's own floors: on n1 itself p50 ${extras.lag.floorP50} / p99 ${extras.lag.floorP99} ms; bare node:http p50 ${extras.lag.bareP50} / p99 ${extras.lag.bareP99} ms, written on one bare server and read on another p50 ${extras.lag.bare2P50} / p99 ${extras.lag.bare2P99} ms)`,
    );
  }
  if (extras.failover)
    add(
      'failure detection after SIGKILL <= 1 s',
      extras.failover.maxMs <= 1000,
      `${extras.failover.detect.map((s) => `${s.node} ${fx(s.ms, 1)} ms`).join(', ')}`,
    );
  if (extras.transfer)
    add(
      `state transfer of ${fmt(extras.transfer.sessions)} sessions <= 3 s`,
      extras.transfer.transferMs <= 3000 && extras.transfer.complete,
      `${fmt(extras.transfer.transferMs)} ms (B start() -> ready ${fmt(extras.transfer.startMs)} ms)${extras.transfer.complete ? '' : ' INCOMPLETE'}`,
    );
  return t;
}

/** The report: `settings` as in the results JSON (sessions, connections, durationS, warmupS, reps, payload, readPct). */
export function markdown(info, startedAt, results, extras, tgs, refs, settings) {
  const { sessions: SESSIONS, connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S } = settings;
  const { reps: REPS, payload: PAYLOAD, readPct: READ_PCT } = settings;
  const L = [reportHead('clowder comparison benchmark', startedAt, info)];
  L.push(
    `Workload: the counter app (../shared/workload), ${SESSIONS} sessions, \`wrk -t2 -c${CONNECTIONS} -d${DURATION_S}s --timeout 5s -s ${READ_PCT > 0 ? 'bench/compare/session-mix.lua' : 'session.lua'} -- cookies ${PAYLOAD} ${READ_PCT}\` ` +
      `(${READ_PCT > 0 ? `${READ_PCT} % GET /app/read, the rest increments (lost = acknowledged increments, counted by the script, minus the sessions' growth); clowder nodes declare /app/read read-only (readOnlyFilter ${READ_ONLY})` : 'write-only'}, 1 KiB payload; -t<n> with WRK_PORTS for rows of more than two servers) after a ${WARMUP_S} s warm-up; ${REPS} round(s), every row once per round (req/s, x Map and x Redis: medians, the ratios taken within each round; the other columns: the row's median round; lost and errors: its worst round). ` +
      `CPU = utime+stime of every server process and redis-server during the measured run, per request; RSS = their sum at its end. ` +
      `x Map / x Redis = req/s over the Map-session row / the fastest Redis-backed row${refs.fastestRedis ? ` (${refs.fastestRedis.row})` : ''}. ` +
      'lost = acknowledged increments missing from the sessions (raw = after - before - requests; 0..connections is requests still in flight when wrk stopped, ' +
      'which can hide up to that many lost ones; clowder rows also give the exact figure, which the 0-lost target uses too: increments the nodes ran the application for (requests their session managers began, minus reads and requests whose client went away while they waited for the session) minus increments counted).',
    '',
  );
  const lost = (r) =>
    r.lost === undefined
      ? 'n/a'
      : `${fmt(r.lost)} (${r.rawDiff >= 0 ? '+' : ''}${fmt(r.rawDiff)}${r.lostExact !== undefined ? `; ran-counted ${fmt(r.lostExact)}` : ''})`;
  if (results.length > 0)
    L.push(
      mdTable(
        [
          ...['row', 'processes', 'req/s', 'x Map', 'x Redis', 'p50 ms', 'p99 ms', 'errors', 'lost (raw)'],
          ...['CPU µs/req', 'RSS MiB', 'machine busy', 'rounds (req/s)'],
        ],
        results.map((r) =>
          r.na
            ? [`${r.row}: ${r.label}`, '-', r.na, '', '', '', '', '', '', '', '', '', '']
            : [
                ...[`${r.row}: ${r.label}`, r.processes, fmt(r.rps), fx(r.xMap), fx(r.xRedis), fx(r.p50), fx(r.p99)],
                ...[fmt(r.errors), `${lost(r)}${r.replicasAgree === false ? ' replicas differ' : ''}`],
                ...[fx(r.cpuUsPerReq, 1), fx(r.rssBytes / 1048576, 0), `${fx(100 * r.machineBusy, 0)} %`],
                `${r.rounds
                  .filter((x) => !x.na)
                  .map((x) => fmt(x.rps))
                  .join(' / ')}${r.failedRounds ? ` (${r.failedRounds} failed)` : ''}`,
              ],
        ),
        ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
      ),
    );
  const cl = results.filter((r) => r.clowder);
  if (cl.length > 0) {
    L.push('', "clowder per node after the row's median round (DeltaManager counters):", '');
    for (const r of cl)
      L.push(
        `- ${r.row}: ${r.clowder.map((n, i) => `n${i + 1} sessions ${n.sessions}, conflicts ${n.conflicts}, ownership moves ${n.ownershipMoves} (timeouts ${n.ownershipTimeouts}, forced ${n.ownershipForced}), staleDeltas ${n.staleDeltas}, replicationErrors ${n.replicationErrors}, repairs ${n.repairs}`).join('; ')}` +
          (r.replicaSums ? `; sums of counts per node ${r.replicaSums.join(' / ')}` : ''),
      );
  }
  if (extras.lag || extras.failover || extras.transfer) {
    L.push('', '| measurement | result |', '|:---|:---|');
    if (extras.lag)
      L.push(
        `| replication lag, async 3 nodes, /app/read declared read-only (sessions.readOnlyFilter ${READ_ONLY}; the shared lag probe, mirrored by lag-client.mjs: ${extras.lag.probes} probes after ${WARMUP_S} s of the same probes as a warm-up, write on n1, read on n2 at once) | ${extras.lag.stale} stale (${fx(extras.lag.stalePct, 1)} %), read-after-write p50 ${extras.lag.p50} ms, p99 ${extras.lag.p99} ms, ${extras.lag.errors} errors; floor (the same probe reading on n1 itself) p50 ${extras.lag.floorP50} ms, p99 ${extras.lag.floorP99} ms; bare node:http (the machine's floor for this probe) p50 ${extras.lag.bareP50} ms, p99 ${extras.lag.bareP99} ms, written on one bare server and read on another p50 ${extras.lag.bare2P50} ms, p99 ${extras.lag.bare2P99} ms${extras.lag.rounds?.length > 1 ? `; rounds p50/p99 ${extras.lag.rounds.map(([a, b]) => `${a}/${b}`).join(', ')}` : ''}${visibleText(extras.lag.visible, extras.lag.visibleCold)} |`,
      );
    for (const [key, what] of LAG_SIDES) {
      const x = extras.lag?.[key];
      if (x === undefined) continue;
      L.push(
        `| replication lag, ${what} | ${x.stale} stale (${fx(x.stalePct, 1)} %, worst round ${fx(x.worstStalePct, 1)} %), read-after-write p50 ${x.p50} ms, p99 ${x.p99} ms, ${x.errors} errors${x.rounds.length > 1 ? `; rounds p50/p99 ${x.rounds.join(', ')}` : ''}${visibleText(x.visible, x.visibleCold)} |`,
      );
    }
    if (extras.failover)
      L.push(
        `| failure detection: SIGKILL of ${extras.failover.killed}, until /_clowder/stats shows one member less (polled every 5 ms) | ${extras.failover.detect.map((s) => `${s.node} ${fx(s.ms, 1)} ms`).join(', ')} |`,
      );
    if (extras.transfer)
      L.push(
        `| state transfer: ${fmt(extras.transfer.sessions)} sessions of 1 KiB to a joining node | stateTransfer.durationMs ${fmt(extras.transfer.transferMs)} (${extras.transfer.state}, ${fmt(extras.transfer.received)} sessions, ${fmt(extras.transfer.bytes / 1048576, 1)} MiB, ${extras.transfer.chunks} chunks); B start() -> ready ${fmt(extras.transfer.startMs)} ms${extras.transfer.rounds?.length > 1 ? `; rounds ${extras.transfer.rounds.map((x) => fmt(x)).join(' / ')} ms` : ''} |`,
      );
  }
  if (tgs.length > 0) L.push('', '### Targets', '', targetList(tgs));
  const profiled = results.filter((r) => r.profile);
  if (extras.transfer?.profile)
    for (const [who, p] of Object.entries(extras.transfer.profile))
      profiled.push({ row: `transfer ${who}`, profile: { files: 1, ...p } });
  if (profiled.length > 0) {
    L.push('', '### CPU profiles (top self time, all nodes of the row together)', '');
    for (const r of profiled) {
      L.push(
        `${r.row}: ${r.profile.files} profiles, ${r.profile.sampledS} s sampled (idle and (program) left out)`,
        '',
      );
      printProfile(r.profile, (line) => L.push(line));
      L.push('');
    }
  }
  return `${L.join('\n')}\n`;
}
