/**
 * The SWIM/Lifeguard detector as a state machine: fake clock, in-memory datagram network (no
 * sockets). Detection time bounds, confirmations shrinking a suspicion, the local-health
 * multiplier, refutation by incarnation, and verification as the last word.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type DetectorConfig, resolveChannelConfig } from '../../../src/config/channel-config.js';
import { Detector } from '../../../src/membership/detector.js';
import { expectedConfirmations, suspicionMinMs, suspicionTimeoutMs } from '../../../src/membership/suspicion.js';
import type { Probe } from '../../../src/wire/probe.js';

/** A fake clock: timers fire in time order as `advance` moves it. */
class Clock {
  now = 0;
  #timers: { at: number; seq: number; fn: () => void; dead: boolean }[] = [];
  #seq = 0;
  set(fn: () => void, ms: number): unknown {
    const t = { at: this.now + ms, seq: this.#seq++, fn, dead: false };
    this.#timers.push(t);
    return t;
  }
  clear(h: unknown): void {
    if (h) (h as { dead: boolean }).dead = true;
  }
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const live = this.#timers.filter((t) => !t.dead && t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq);
      const t = live[0];
      if (t === undefined) break;
      t.dead = true;
      this.now = t.at;
      t.fn();
    }
    this.now = end;
    this.#timers = this.#timers.filter((t) => !t.dead);
  }
}

interface NodeState {
  id: string;
  detector: Detector;
  /** Answers nothing (partitioned or paused). */
  silent: boolean;
  /** TCP verification answer about this node. */
  tcpAlive: boolean;
  dead: string[];
}

/** n nodes on one fake network; `lose(from, to)` decides whether a datagram is lost; delivery takes `latency` ms. */
function cluster(
  n: number,
  mode: DetectorConfig['mode'],
  opts: { lose?: (from: string, to: string) => boolean; latency?: number; seed?: number } = {},
) {
  const clock = new Clock();
  const config = { ...resolveChannelConfig({}).detector, mode };
  const nodes = new Map<string, NodeState>();
  let seed = opts.seed ?? 42;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
  const deliver = (from: string, to: string, p: Probe) => {
    const target = nodes.get(to)!;
    if (nodes.get(from)!.silent || target.silent || opts.lose?.(from, to)) return;
    clock.set(() => {
      if (!target.silent) target.detector.receive(p, from);
    }, opts.latency ?? 1);
  };
  const ids = Array.from({ length: n }, (_, i) => String(i + 1).padStart(32, '0'));
  for (const id of ids) {
    const state: NodeState = {
      id,
      silent: false,
      tcpAlive: true,
      dead: [],
      detector: undefined as unknown as Detector,
    };
    state.detector = new Detector(id, config, {
      now: () => clock.now,
      setTimer: (fn, ms) => clock.set(fn, ms),
      clearTimer: (h) => clock.clear(h),
      send: (to, p) => deliver(id, to.id, p),
      reply: (to, p) => deliver(id, to as string, p),
      verify: (target, timeoutMs) =>
        new Promise((resolve) => {
          const t = nodes.get(target)!;
          clock.set(() => resolve(t.tcpAlive && !t.silent), t.tcpAlive && !t.silent ? 2 : timeoutMs);
        }),
      dead: (target) => {
        state.dead.push(target);
        state.detector.remove(target);
      },
      random,
    });
    nodes.set(id, state);
  }
  for (const a of ids) for (const b of ids) if (a !== b) nodes.get(a)!.detector.add({ id: b, host: '', port: 0 });
  for (const s of nodes.values()) s.detector.start();
  /** Lets promise callbacks (verification results) run between timer steps. */
  const run = async (ms: number, step = 5) => {
    for (let t = 0; t < ms; t += step) {
      clock.advance(step);
      await new Promise((r) => setImmediate(r));
    }
  };
  return { clock, config, nodes, ids, run };
}

describe('suspicion timeout (Lifeguard, memberlist formula)', () => {
  test('min grows with log10(n); confirmations shrink max to min', () => {
    assert.equal(suspicionMinMs(3, 3, 100), 300);
    assert.equal(suspicionMinMs(4, 100, 1000), 8000);
    assert.equal(expectedConfirmations(3, 3), 1);
    assert.equal(expectedConfirmations(4, 10), 2);
    assert.equal(expectedConfirmations(4, 3), 1);
    assert.equal(expectedConfirmations(3, 2), 0);
    // memberlist's table: n = 4-10, LAN: min 4 s, max 24 s, 11.38 s after one confirmation, 4 s after two.
    assert.equal(suspicionTimeoutMs(0, 2, 4000, 24_000), 24_000);
    assert.equal(suspicionTimeoutMs(1, 2, 4000, 24_000), 11_381);
    assert.equal(suspicionTimeoutMs(2, 2, 4000, 24_000), 4000);
    assert.equal(suspicionTimeoutMs(5, 2, 4000, 24_000), 4000);
    assert.equal(suspicionTimeoutMs(0, 0, 300, 900), 300);
  });
});

describe('detector', () => {
  test('healthy cluster: probes, no suspicion, health stays at 0', async () => {
    const c = cluster(3, 'lifeguard');
    await c.run(3000);
    for (const s of c.nodes.values()) {
      assert.ok(s.detector.counters.probes >= 25, `probes: ${s.detector.counters.probes}`);
      assert.equal(s.detector.counters.suspicions, 0);
      assert.equal(s.detector.counters.awareness, 0);
      assert.deepEqual(s.dead, []);
    }
  });

  for (const mode of ['lifeguard', 'swim'] as const) {
    test(`${mode}: a silent member is removed by both others within 1 s, confirmed by TCP`, async () => {
      for (let seed = 1; seed <= 10; seed++) {
        const c = cluster(3, mode, { seed });
        await c.run(1000);
        const [a, b, x] = c.ids.map((id) => c.nodes.get(id)!);
        x!.silent = true;
        const t0 = c.clock.now;
        const when: number[] = [];
        for (let t = 0; t < 2000 && (when[0] === undefined || when[1] === undefined); t += 5) {
          await c.run(5);
          for (const s of [a!, b!])
            if (s.dead.includes(x!.id) && !when[c.ids.indexOf(s.id)]) when[c.ids.indexOf(s.id)] = c.clock.now - t0;
        }
        const worst = Math.max(when[0] ?? Number.POSITIVE_INFINITY, when[1] ?? Number.POSITIVE_INFINITY);
        assert.ok(
          worst <= 1000,
          `seed ${seed}: removed by both after ${when} ms; ${JSON.stringify(a!.detector.counters)} ${a!.detector.suspected(x!.id)}`,
        );
        assert.equal(a!.detector.counters.confirmedRemovals + b!.detector.counters.confirmedRemovals, 2);
      }
    });
  }

  test('lifeguard: an unconfirmed suspicion lasts max; a confirmation from another member cuts it towards min', async () => {
    /** Time from node 1's suspicion of node 4 to its removal, with `confirmers` other nodes probing too. */
    async function suspicionLength(confirmers: number): Promise<[number, number]> {
      const c = cluster(4, 'lifeguard', { seed: 3 });
      const [a, b, d, x] = c.ids.map((id) => c.nodes.get(id)!);
      x!.silent = true;
      x!.tcpAlive = false;
      if (confirmers < 2) d!.detector.stop();
      if (confirmers < 1) b!.detector.stop();
      let suspectedAt = -1;
      let mult = 1;
      for (let t = 0; t < 10_000 && a!.dead.length === 0; t += 5) {
        await c.run(5);
        if (suspectedAt < 0 && a!.detector.suspected(x!.id)) {
          suspectedAt = c.clock.now;
          mult = a!.detector.multiplier;
        }
      }
      assert.deepEqual(a!.dead, [x!.id]);
      return [c.clock.now - suspectedAt, mult];
    }
    const min = suspicionMinMs(3, 4, 100);
    const max = 3 * min;
    // Without helpers nobody nacks: node 1's own health drops, and its suspicion is scaled by it too.
    const [alone, mult] = await suspicionLength(0);
    const [confirmed, healthy] = await suspicionLength(2);
    assert.equal(healthy, 1);
    assert.ok(alone >= mult * max - 5 && alone <= mult * max + 50, `unconfirmed: ${alone} ms (max ${max} × ${mult})`);
    assert.ok(confirmed < alone - 200, `confirmed: ${confirmed} ms < unconfirmed ${alone} ms`);
    assert.ok(confirmed >= min - 5, `never below min: ${confirmed} ms (min ${min})`);
  });

  test('refutation: a suspected member that is alive raises its incarnation; the suspicion ends refuted', async () => {
    const c = cluster(3, 'lifeguard');
    await c.run(500);
    const [a, , x] = c.ids.map((id) => c.nodes.get(id)!);
    a!.detector.receive({ kind: 5, seq: 0, incarnation: 0, suspected: false, sender: c.ids[1]!, subject: x!.id }, null);
    assert.ok(a!.detector.suspected(x!.id));
    // Node 3 has not heard of it: the buddy system tells it on node 1's next ping of it.
    await c.run(1500);
    assert.ok(!a!.detector.suspected(x!.id));
    assert.deepEqual(a!.dead, []);
    assert.equal(a!.detector.counters.refutations, 1);
    assert.equal(a!.detector.counters.falseSuspicions, 1);
    assert.ok(x!.detector.incarnation >= 1);
    assert.ok(x!.detector.counters.selfRefutations >= 1);
  });

  test('a suspicion naming an older incarnation is held at the known one: only a higher ALIVE ends it', () => {
    const c = cluster(3, 'lifeguard');
    const [a, , x] = c.ids.map((id) => c.nodes.get(id)!);
    a!.detector.receive({ kind: 6, seq: 0, incarnation: 5, suspected: false, sender: x!.id, subject: x!.id }, null);
    a!.detector.receive({ kind: 5, seq: 0, incarnation: 4, suspected: false, sender: c.ids[1]!, subject: x!.id }, null);
    assert.ok(a!.detector.suspected(x!.id), 'the reporter could not reach it: suspected');
    a!.detector.receive({ kind: 6, seq: 0, incarnation: 5, suspected: false, sender: x!.id, subject: x!.id }, null);
    assert.ok(a!.detector.suspected(x!.id), 'ALIVE at the suspected incarnation does not refute');
    a!.detector.receive({ kind: 6, seq: 0, incarnation: 6, suspected: false, sender: x!.id, subject: x!.id }, null);
    assert.ok(!a!.detector.suspected(x!.id), 'ALIVE above it does');
    assert.equal(a!.detector.counters.refutations, 1);
  });

  test('verification is the last word: a member whose UDP is lost but TCP answers is kept (rescued)', async () => {
    const c = cluster(3, 'swim', { lose: (f, t) => f === ids(2) || t === ids(2) });
    function ids(i: number) {
      return String(i + 1).padStart(32, '0');
    }
    await c.run(3000);
    for (const s of c.nodes.values()) assert.deepEqual(s.dead, [], 'no removal while TCP answers');
    const a = c.nodes.get(c.ids[0]!)!.detector.counters;
    assert.ok(a.verifyRescues >= 1, `rescued: ${JSON.stringify(a)}`);
    assert.equal(a.confirmedRemovals, 0);
  });

  test('local health: missed nacks raise the multiplier (this node is the problem); successes lower it', async () => {
    // Node 1 loses every datagram it receives: its probes and the nacks for them never come back.
    const c = cluster(3, 'lifeguard', { lose: (_f, t) => t === ids(0) });
    function ids(i: number) {
      return String(i + 1).padStart(32, '0');
    }
    const a = c.nodes.get(c.ids[0]!)!.detector;
    await c.run(3000);
    assert.ok(a.counters.awareness >= 3, `awareness ${a.counters.awareness}`);
    assert.ok(a.multiplier === a.counters.awareness + 1);
    // Others stay healthier: their nacks came back (they only refuted node 1's suspicions of them).
    assert.ok(c.nodes.get(c.ids[1]!)!.detector.counters.awareness < a.counters.awareness);
    // A node in poor health gives a suspect more time: × its multiplier (here ≥ 4 × the 300 ms minimum).
    const mult = a.multiplier;
    const x = c.nodes.get(c.ids[2]!)!;
    x.silent = true;
    x.tcpAlive = false;
    const t0 = c.clock.now;
    a.receive({ kind: 5, seq: 0, incarnation: 0, suspected: false, sender: c.ids[1]!, subject: x.id }, null);
    const node1 = c.nodes.get(c.ids[0]!)!;
    while (!node1.dead.includes(x.id) && c.clock.now - t0 < 20_000) await c.run(5);
    assert.ok(
      c.clock.now - t0 >= mult * 300,
      `suspicion of a node in poor health lasted ${c.clock.now - t0} ms (multiplier ${mult})`,
    );
    // Same failure in plain SWIM: no multiplier.
    const s = cluster(3, 'swim', { lose: (_f, t) => t === ids(0) });
    await s.run(3000);
    assert.equal(s.nodes.get(s.ids[0]!)!.detector.multiplier, 1);
  });

  test('refuses a PING_REQ for a non-member (no reflection) and an ack for another target', () => {
    const c = cluster(3, 'lifeguard');
    const a = c.nodes.get(c.ids[0]!)!.detector;
    const stranger = 'f'.repeat(32);
    a.receive({ kind: 3, seq: 1, incarnation: 0, suspected: false, sender: c.ids[1]!, subject: stranger }, null);
    a.receive({ kind: 3, seq: 1, incarnation: 0, suspected: false, sender: stranger, subject: c.ids[1]! }, null);
    a.receive({ kind: 1, seq: 1, incarnation: 0, suspected: false, sender: c.ids[1]!, subject: stranger }, null);
    assert.equal(a.counters.refused, 3);
  });
});
