/**
 * The ACQUIRE/GRANT protocol against a scripted member: a bare channel that advertises /app and
 * says exactly what the test makes it say, so each step of a take-over happens in a known order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Channel, createChannel, encode, type Member, silentLogger } from '../../../src/index.js';
import { Msg } from '../../../src/session/messages.js';
import { CookieJar, countOf, get, managerOf, startPair, type TestCluster, throwFailures } from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';

describe('ownership (migrate) against a scripted member', () => {
  let cluster: TestCluster;
  let pb: number;
  /** The scripted member: what it received, decoded, in order. */
  let x: Channel;
  const inbox: unknown[][] = [];
  before(async () => {
    ({ cluster, pb } = await startPair());
    x = createChannel({ name: 'x', ...cluster.options('x').cluster }, { logger: silentLogger });
    x.setPayload({ contexts: ['/app'] });
    x.onMessage((msg) => {
      const m = msg.value as unknown[];
      // A node that finds x late asks it for its sessions: it has none.
      if (m[0] === Msg.STATE_REQUEST) void x.send(msg.from, [Msg.STATE_NONE, m[1], m[2]]);
      else inbox.push(m);
    });
    await x.start();
    const sees = (c: Channel, name: string) => c.members().some((m) => m.name === name);
    await waitFor(() => sees(cluster.node('b').channel, 'x') && sees(x, 'b'), 'B and x to see each other');
  });
  after(async () => {
    throwFailures(await Promise.allSettled([x?.stop(), cluster?.stop()]), 'cleaning up');
  });

  /** B as x lists it. */
  function memberB(): Member {
    const m = x.members().find((y) => y.name === 'b');
    if (m === undefined) throw new Error('x does not list b');
    return m;
  }

  /** The first message in x's inbox that `match` accepts, once it is there. */
  async function received(match: (m: unknown[]) => boolean, what: string): Promise<unknown[]> {
    return (await waitFor(() => inbox.find(match), what))!;
  }

  test("a node waiting for a session it believes the asker owns answers the asker's ACQUIRE only once it owns it", async () => {
    const mb = managerOf(cluster.node('b'));
    const jar = new CookieJar();
    await jar.get(pb, '/app/counter'); // B creates and owns it: count 1
    const id = jar.id;
    await received((m) => m[0] === Msg.CREATED && m[2] === id, 'x to receive the session');
    // x writes a newer version: B now believes x owns it.
    const s = mb.sessions.get(id)!;
    const v = s.version;
    await x.send(memberB(), [Msg.DELTA, '/app', id, v, v + 1, ['count'], [encode(5)], [], null]);
    await waitFor(() => s.ownerId !== mb.localId, 'B to take x for the owner');
    // A request on B: B asks x for the session, and waits.
    const onB = get(pb, '/app/counter', jar.cookie);
    const ask = await received((m) => m[0] === Msg.ACQUIRE && m[2] === id, 'B to ask x');
    // Meanwhile x asks B (as a node would whose last news is that B has it). B's belief, frozen
    // while its request waits, names x; but B does not own the session: it must not grant it.
    inbox.length = 0;
    await x.send(memberB(), [Msg.ACQUIRE, '/app', id, 777]);
    // An answer that B sends at once, after whatever it answered the ACQUIRE with on the same connection.
    await x.send(memberB(), [Msg.STATE_REQUEST, '/nothing-here', 'probe']);
    await received((m) => m[0] === Msg.STATE_NONE && m[2] === 'probe', "B's answer to the probe");
    assert.equal(
      inbox.find((m) => m[0] === Msg.GRANT),
      undefined,
      'B did not hand x a session B does not have',
    );
    // x grants B's request: B serves it, then hands the session to x after its change.
    await x.send(memberB(), [Msg.GRANT, '/app', id, ask[3], mb.localId, true]);
    assert.equal(countOf((await onB).body), 6, "B's request counted on from x's write");
    const grant = await received((m) => m[0] === Msg.GRANT && m[3] === 777, 'B to hand the session to x');
    assert.equal(grant[5], true);
    const change = inbox.findIndex((m) => m[0] === Msg.DELTA && m[2] === id);
    assert.ok(change >= 0 && change < inbox.indexOf(grant), "B's change travelled before its hand-over");
    assert.equal(s.ownerId, x.local.id);
  });

  test("an ACQUIRE handled while the owner's last change waits for the end of the turn: the change travels first", async () => {
    const b = cluster.node('b');
    const mb = managerOf(b);
    const jar = new CookieJar();
    await jar.get(pb, '/app/counter'); // B creates and owns it
    const id = jar.id;
    await received((m) => m[0] === Msg.CREATED && m[2] === id, 'x to receive the session');
    const s = mb.sessions.get(id)!;
    const xOnB = b.channel.members().find((m) => m.name === 'x')!;
    inbox.length = 0;
    // A request on B changes the session: its change is queued for the end of this turn.
    mb.requestStarted(s);
    s.setAttribute('count', 41);
    mb.requestCompleted(s);
    // In the same turn B handles x's ACQUIRE (as if just read from its socket): nothing of B's is
    // in flight on the session, so it hands over now, and its queued change must go first.
    mb.receive([Msg.ACQUIRE, '/app', id, 4242], xOnB);
    const grant = await received((m) => m[0] === Msg.GRANT && m[3] === 4242, 'B to hand the session to x');
    assert.equal(grant[5], true);
    const change = inbox.findIndex((m) => m[0] === Msg.DELTA && m[2] === id);
    assert.ok(change >= 0 && change < inbox.indexOf(grant), "B's last change travelled before its hand-over");
    assert.equal(s.ownerId, x.local.id);
  });
});
