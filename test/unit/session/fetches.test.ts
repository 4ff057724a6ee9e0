/**
 * The asking side of a BackupManager fetch (src/session/fetches.ts) against a scripted host: the
 * answers it gets while a session's ownership moves between members, as the twin stress
 * (twin-backup-take.test.ts) produced them, and what the fetching node then believes.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Member } from '../../../src/channel/types.js';
import type { FetchedMsg } from '../../../src/session/backup-messages.js';
import { type FetchCounters, Fetches, newFetchCounters } from '../../../src/session/fetches.js';
import { Msg } from '../../../src/session/messages.js';
import type { Session } from '../../../src/session/session.js';

const ID = 'A'.repeat(32);
const member = (name: string): Member => ({
  id: `${name}-id`,
  name,
  host: '127.0.0.1',
  port: 0,
  domain: '',
  startTime: 0,
  protocolVersion: 1,
  payload: undefined,
});
const [A, B, D] = [member('A'), member('B'), member('D')];
const ME = 'C-id';

/** A session record (messages.ts) at `version`, naming `owner`. */
const record = (version: number, owner: string) => [ID, 0, 0, 1800, version, [], [], [], [], owner];

interface Held {
  ownerId: string;
  version: number;
  primary: boolean;
  active: number;
}

/** A scripted FetchesHost: what it posts, and a store where records merge by version (owner of the newest). */
function harness() {
  const posts: { to: string[]; message: readonly unknown[] }[] = [];
  const store = new Map<string, Held>();
  const counters: FetchCounters = newFetchCounters();
  /** The members that handed the session over to this node (grants taken). */
  const grants: string[] = [];
  const fetches = new Fetches({
    contextName: 'app',
    localId: ME,
    timeoutMs: 5000,
    counters,
    members: () => [A, B, D],
    post: (to, message) => posts.push({ to: to.map((m) => m.name), message }),
    applyRecord: (raw) => {
      const r = raw as unknown[];
      const s = store.get(ID);
      if (s === undefined)
        store.set(ID, { ownerId: r[9] as string, version: r[4] as number, primary: false, active: 0 });
      else if ((r[4] as number) > s.version) {
        s.version = r[4] as number;
        if (s.active <= 0) s.ownerId = r[9] as string;
      }
    },
    find: (id) => store.get(id) as unknown as Session | undefined,
    endedLately: () => false,
    refuse: (_from, why) => assert.fail(`refused: ${why}`),
    granted: (s, from) => {
      assert.equal(s.ownerId, ME, 'owned here when its grant is taken');
      grants.push(from.name);
    },
  });
  const requestId = () => posts[0]!.message[3] as number;
  const answer = (from: Member, r: unknown[] | null, fifth?: true | string) =>
    fetches.onFetched(
      (fifth === undefined
        ? [Msg.FETCHED, 'app', requestId(), r]
        : [Msg.FETCHED, 'app', requestId(), r, fifth]) as unknown as FetchedMsg,
      from,
    );
  return { fetches, posts, store, answer, counters, grants };
}

describe('BackupManager fetch (asking side)', () => {
  it('no answer claims the session (a hand-over in flight): the members named as owner are asked again', async () => {
    const h = harness();
    let done = false;
    const fetched = h.fetches.fetch(ID, false)!.then((s) => {
      done = true;
      return s;
    });
    assert.deepEqual(h.posts[0]!.to, ['A', 'B', 'D']);
    // A is taking it over from B (its GRANT on the way): A's copy still names D, whom it asked
    // first; B, which handed it over, names A; D's old copy names this node. Nobody claims it.
    h.answer(A, record(216, D.id));
    h.answer(B, record(216, A.id));
    h.answer(D, record(214, ME));
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false, 'the fetch goes on: nobody serves the session yet');
    assert.deepEqual(h.posts[1]?.to.sort(), ['A', 'D'], 'the members named as owner are asked again');
    h.answer(A, record(217, A.id)); // granted by now: A claims it
    h.answer(D, record(214, ME));
    const s = await fetched;
    assert.equal(s?.ownerId, A.id, 'the member that serves it, not a name from an old copy (D would be granted here)');
    assert.equal(h.counters.fetches, 1);
  });

  it('an answer for a session that came here by another path meanwhile is merged at once', async () => {
    const h = harness();
    const fetched = h.fetches.fetch(ID, false)!;
    // The owner's change to its fetcher made this node a copy (v77) before the answers came.
    h.store.set(ID, { ownerId: B.id, version: 77, primary: false, active: 0 });
    h.answer(B, record(78, B.id));
    // The other answers are still awaited; a request here may take the copy over now (ACQUIRE), and
    // the owner, counting its answer among what it sent, grants it without a whole copy.
    assert.equal(h.store.get(ID)!.version, 78, 'the copy has what the answer carried');
    h.answer(A, null);
    h.answer(D, null);
    assert.equal((await fetched) !== undefined, true);
  });
});

describe('BackupManager fetch "take" (one round trip)', () => {
  it('a member without a copy names where the session went: asked next as its owner (hinted), it hands it over', async () => {
    const h = harness();
    h.fetches.takes = true;
    const fetched = h.fetches.fetch(ID, false)!;
    assert.deepEqual(h.posts[0]!.message.slice(4), ['take']);
    // A handed it over to D and dropped its copy; D's grant from A has not arrived at D yet.
    h.answer(A, null, D.id);
    h.answer(B, null);
    h.answer(D, null);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(h.posts[1]?.to, ['D'], 'the member named as where it went is asked again');
    assert.deepEqual(h.posts[1]!.message.slice(4), ['take', true], 'as a named owner (hinted)');
    h.answer(D, record(12, D.id), true);
    const s = await fetched;
    assert.equal(s?.ownerId, ME);
    assert.deepEqual(h.grants, ['D']);
    assert.deepEqual([h.counters.fetchGrants, h.counters.fetchMisses], [1, 0]);
  });

  it("the owner's grant ends the fetch at once; a grant from a member that had not answered is taken when it comes", async () => {
    const h = harness();
    h.fetches.takes = true;
    const fetched = h.fetches.fetch(ID, false)!;
    h.answer(A, record(20, A.id), true);
    const s = await fetched;
    assert.equal(s?.ownerId, ME, 'served without waiting for B and D');
    // This node handed it on, and D, which held the ask until its own take ended, hands it back.
    s!.ownerId = B.id;
    h.answer(D, record(23, D.id), true);
    assert.equal(h.store.get(ID)!.version, 23, 'the late record merged');
    assert.equal(h.store.get(ID)!.ownerId, ME, 'the late grant taken: D no longer owns it');
    assert.deepEqual(h.grants, ['A', 'D']);
    assert.equal(h.counters.lateGrants, 1);
  });

  it('holds a hinted ask while its take asks plainly, and answers it once the take asks members as named owners', async () => {
    const h = harness();
    h.fetches.takes = true;
    assert.equal(h.fetches.holdFor(ID), undefined, 'no take here: answered at once');
    void h.fetches.fetch(ID, false);
    const held = h.fetches.holdFor(ID);
    assert.ok(held !== undefined, 'a take asking plainly: its grant may be on its way');
    let released = false;
    void held.then(() => {
      released = true;
    });
    h.answer(A, record(30, D.id));
    h.answer(B, null);
    await new Promise((r) => setImmediate(r));
    assert.equal(released, false);
    h.answer(D, null); // nobody claims it: D is asked again as the owner A's copy names
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(h.posts[1]?.message.slice(4), ['take', true]);
    assert.equal(released, true, 'a take that waits for a named owner holds nobody: no cycle of holds');
    assert.equal(h.fetches.holdFor(ID), undefined);
  });
});
