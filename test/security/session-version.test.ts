/**
 * Versions from members are bounded: a version near 2^53 (where +1 is lost in a double) would
 * freeze a session's clock, and with it the ordering of every later write. Times too: an access
 * time in the future would keep a session from ever expiring.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { encode } from '../../src/index.js';
import { VERSION_LIMIT, VERSION_STEP } from '../../src/session/message-readers.js';
import { Msg } from '../../src/session/messages.js';
import { CookieJar, countOf, managerOf, startNodes, type TestCluster, throwFailures } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { counter, ScriptedMember } from './scripted-member.js';

describe('versions and times from members are bounded', () => {
  let cluster: TestCluster;
  let x: ScriptedMember;
  before(async () => {
    cluster = await startNodes(2);
    x = await ScriptedMember.join(cluster, 'x');
  });
  after(async () => {
    throwFailures(await Promise.allSettled([x?.stop(), cluster?.stop()]), 'cleaning up');
  });

  test("a version near 2^53 or far ahead is refused, and the session's clock keeps moving", async () => {
    const a = cluster.node('a');
    const b = cluster.node('b');
    const ma = managerOf(a);
    const mb = managerOf(b);
    const port = a.address.port;
    const jar = new CookieJar();
    await jar.get(port, '/app/counter'); // count 1
    const s = ma.sessions.get(jar.id)!;
    const v = s.version;
    const refused = counter(a, 'refusedVersion');
    const attacks = [2 ** 53, Number.MAX_SAFE_INTEGER, VERSION_LIMIT + 1, v + VERSION_STEP + 1];
    for (const version of attacks) {
      await x.send(a, [Msg.DELTA, '/app', jar.id, version - 1, version, ['planted'], [encode(100)], [], null]);
    }
    await x.send(a, [Msg.DELTA, '/app', jar.id, v + 5, v + 5, ['planted'], [encode(100)], [], null]); // base not below
    await x.handled(a);
    assert.equal(counter(a, 'refusedVersion'), refused + attacks.length + 1);
    assert.equal(s.version, v, 'the version did not move');
    assert.equal(s.getAttribute('planted'), undefined, 'nothing of it applied');
    // Every later write moves the clock on, and reaches b.
    let last = s.version;
    for (let i = 2; i <= 4; i++) {
      assert.equal(countOf((await jar.get(port, '/app/counter')).body), i);
      assert.ok(s.version > last, `version ${s.version} after ${last}`);
      last = s.version;
    }
    await waitFor(() => mb.sessions.get(jar.id)?.getAttribute('count') === 4, 'b to hold count 4');
  });

  test('an access time in the future is taken as now', async () => {
    const a = cluster.node('a');
    const jar = new CookieJar();
    await jar.get(a.address.port, '/app/counter');
    const s = managerOf(a).sessions.get(jar.id)!;
    await x.send(a, [Msg.ACCESSED, '/app', jar.id, Date.now() + 1e12]);
    await x.handled(a);
    assert.ok(s.lastAccessedTime <= Date.now(), `last access ${s.lastAccessedTime} is not in the future`);
  });
});
