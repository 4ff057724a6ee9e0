/**
 * The rebalance planner, run as a model cluster: every member holds what placement gives it,
 * members leave, die and join, every surviving member plans its part, and the plans are applied
 * (sends add a copy, releases remove one). Afterwards every session surviving a change has exactly
 * its new holders (1 + min(k, n − 1)), no copy is sent twice, nothing is lost while one holder
 * lives, and chunks respect their bound.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Placement, type PlacementMember } from '../../../src/session/placement.js';
import { actingPrimary, type HeldSession, planRebalance } from '../../../src/session/rebalance.js';
import { fuzzRuns } from '../../helpers/fuzz.js';

const hex32 = fc.stringMatching(/^[0-9a-f]{32}$/);

interface Model {
  members: PlacementMember[];
  /** member id → session id → the primary it knows of. */
  held: Map<string, Map<string, string>>;
  /** session id → its primary (or custodian). */
  primary: Map<string, string>;
}

function placementOf(members: PlacementMember[]): Placement {
  return new Placement(members);
}

function build(members: PlacementMember[], sessions: number, k: number, seed: number): Model {
  const p = placementOf(members);
  const held = new Map(members.map((m) => [m.id, new Map<string, string>()]));
  const primary = new Map<string, string>();
  for (let i = 0; i < sessions; i++) {
    const id = `${seed.toString(16).padStart(8, '0')}${i.toString(16).padStart(24, '0')}`.toUpperCase();
    const pr = members[(i * 7 + seed) % members.length]!.id;
    primary.set(id, pr);
    for (const h of p.holders(id, pr, k)) held.get(h)!.set(id, pr);
  }
  return { members, held, primary };
}

/** Applies a membership change to the model and runs every member's plan; returns the plans' totals. */
function change(model: Model, next: PlacementMember[], k: number, chunkSize: number): { sent: number } {
  const before = placementOf(model.members);
  const after = placementOf(next);
  // Gone members lose what they held; joiners start empty.
  for (const id of model.held.keys()) if (!after.has(id)) model.held.delete(id);
  for (const m of next) if (!model.held.has(m.id)) model.held.set(m.id, new Map());
  const plans = [...model.held.entries()].map(([self, held]) => {
    const list: HeldSession[] = [...held].map(([id, primary]) => ({ id, primary }));
    return { self, plan: planRebalance({ self, held: list, before, after, backups: k, chunkSize }) };
  });
  let sent = 0;
  const seen = new Set<string>();
  for (const { self, plan } of plans) {
    for (const c of plan.sends) {
      assert.ok(c.ids.length >= 1 && c.ids.length <= chunkSize, 'chunk within its bound');
      assert.notEqual(c.to, self);
      for (const id of c.ids) {
        const key = `${id}>${c.to}`;
        assert.ok(!seen.has(key), `sent twice: ${key}`);
        seen.add(key);
        assert.ok(!model.held.get(c.to)!.has(id), 'sent to a member that already held it');
        model.held.get(c.to)!.set(id, self);
        sent++;
      }
    }
    for (const id of [...plan.adopted, ...plan.orphans]) model.primary.set(id, self);
  }
  // Every acting node now names itself as the primary of its sessions, on every holder.
  for (const { plan } of plans) {
    for (const c of plan.releases) {
      assert.ok(c.ids.length <= chunkSize);
      for (const id of c.ids) {
        assert.ok(model.held.get(c.to)!.delete(id), 'released a copy the member did not hold');
      }
    }
  }
  for (const [id, pr] of model.primary) {
    const acting = actingPrimary(id, pr, before, after, k);
    if (acting === undefined) {
      model.primary.delete(id);
      continue;
    }
    model.primary.set(id, acting);
    for (const held of model.held.values()) if (held.has(id)) held.set(id, acting);
  }
  model.members = next;
  return { sent };
}

function assertExact(model: Model, k: number): void {
  const p = placementOf(model.members);
  for (const [id, pr] of model.primary) {
    const want = new Set(p.holders(id, pr, k));
    const have = new Set([...model.held].filter(([, h]) => h.has(id)).map(([m]) => m));
    assert.deepEqual([...have].sort(), [...want].sort(), `holders of ${id}`);
    assert.equal(have.size, 1 + Math.min(k, model.members.length - 1));
  }
}

const step = fc.oneof(
  fc.record({ kind: fc.constant('join' as const), id: hex32, host: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ kind: fc.constant('leave' as const), which: fc.nat() }),
);

describe('rebalance planner', () => {
  it('keeps every session at exactly 1 + min(k, n − 1) holders through joins and one loss at a time', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(hex32, { minLength: 2, maxLength: 6 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(step, { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 1, max: 7 }),
        fc.nat({ max: 1000 }),
        (ids, k, steps, chunkSize, seed) => {
          let members = ids.map((id, i) => ({ id, host: `h${i % 3}` }));
          const model = build(members, 60, k, seed);
          assertExact(model, k);
          const total = model.primary.size;
          for (const s of steps) {
            if (s.kind === 'join') {
              if (members.some((m) => m.id === s.id)) continue;
              members = [...members, { id: s.id, host: `h${s.host}` }];
            } else {
              if (members.length <= 1) continue;
              members = members.filter((_, i) => i !== s.which % members.length);
            }
            change(model, members, k, chunkSize);
            // With k ≥ 1 and one member lost at a time, nothing is lost.
            assert.equal(model.primary.size, total, 'sessions lost');
            assertExact(model, k);
          }
        },
      ),
      fuzzRuns(100),
    );
  });

  it('a member joining receives only its share (about k/n of the copies)', () => {
    const ids = Array.from({ length: 5 }, (_, i) => `${i}`.repeat(32));
    const members = ids.slice(0, 4).map((id) => ({ id, host: id }));
    const k = 1;
    const model = build(members, 2000, k, 3);
    const { sent } = change(model, [...members, { id: ids[4]!, host: ids[4]! }], k, 100);
    // The joiner gets ≈ 2000 × k / 4 copies (it is never the primary of an existing session).
    assert.ok(sent > 2000 * 0.25 * 0.7 && sent < 2000 * 0.25 * 1.3, `sent ${sent}`);
    assert.equal(model.held.get(ids[4]!)!.size, sent);
    assertExact(model, k);
  });

  it('the primary leaving: its first surviving backup adopts the session and restores the factor', () => {
    const members = ['a', 'b', 'c', 'd'].map((c) => ({ id: c.repeat(32), host: c }));
    const k = 2;
    const before = new Placement(members);
    const after = new Placement(members.slice(1));
    const id = '0123456789ABCDEF0123456789ABCDEF';
    const primary = members[0]!.id;
    const backups = before.backups(id, primary, k);
    const custodian = backups[0]!;
    const plan = planRebalance({
      self: custodian,
      held: [{ id, primary }],
      before,
      after,
      backups: k,
      chunkSize: 10,
    });
    assert.deepEqual(plan.adopted, [id]);
    // Three members left, k = 2: the custodian plus the other two.
    const others = members
      .slice(1)
      .map((m) => m.id)
      .filter((m) => m !== custodian);
    const newcomer = others.find((m) => !backups.includes(m));
    assert.deepEqual(plan.sends, newcomer === undefined ? [] : [{ to: newcomer, ids: [id] }]);
    assert.deepEqual(plan.releases, []);
    // The other backup does nothing: one sender per session.
    const other = planRebalance({
      self: backups[1]!,
      held: [{ id, primary }],
      before,
      after,
      backups: k,
      chunkSize: 10,
    });
    assert.deepEqual([other.sends, other.releases, other.adopted], [[], [], []]);
  });

  it('a copy held by nobody else that survives is kept as an orphan, not dropped', () => {
    const members = ['a', 'b', 'c'].map((c) => ({ id: c.repeat(32), host: c }));
    const before = new Placement(members);
    // The member that is not among the session's holders keeps a stray copy; both holders die.
    const id = 'FFFF456789ABCDEF0123456789ABCDEF';
    const holders = before.holders(id, members[0]!.id, 1);
    const stray = members.find((m) => !holders.includes(m.id))!.id;
    const plan = planRebalance({
      self: stray,
      held: [{ id, primary: members[0]!.id }],
      before,
      after: new Placement(members.filter((m) => m.id === stray)),
      backups: 1,
      chunkSize: 10,
    });
    assert.deepEqual(plan.orphans, [id]);
    assert.deepEqual([plan.sends, plan.releases], [[], []]);
  });
});
