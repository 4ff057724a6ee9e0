/**
 * Route re-homing, for every session manager (test/helpers/managers.ts): a request at node B whose
 * cookie names node A is served at B and its cookie re-issued for B, with the same id and data;
 * `req.session.originalRoute` keeps A for that request; the next request with the new cookie is
 * at home (no cookie, no original route). The same after A is gone (a balancer sends A's clients
 * elsewhere), and for a route no node has (a renamed or retired node).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  get,
  idOf,
  managerOf,
  portOf,
  routeOf,
  sessionCookie,
  startNodes,
  type TestCluster,
} from '../../helpers/http.js';
import { MANAGERS } from '../../helpers/managers.js';
import { waitFor } from '../../helpers/wait.js';
import { COUNTER_AND_PROBE, PROBE } from './apps.js';

interface Who {
  id: string;
  route: string;
  originalRoute: string | null;
}

for (const manager of MANAGERS) {
  describe(`route re-homing (${manager.name} manager)`, () => {
    let cluster: TestCluster;
    before(async () => {
      cluster = await startNodes(3, { apps: COUNTER_AND_PROBE, sessions: { ...manager.sessions } });
    });
    after(() => cluster.stop());

    /** GET /probe/whoami at `node` with `cookie`: who served it, and the cookie it set (if any). */
    async function whoami(node: string, cookie?: string): Promise<{ who: Who; set: string | undefined }> {
      const res = await get(portOf(cluster.node(node)), '/probe/whoami', cookie);
      assert.equal(res.status, 200, res.body);
      return { who: JSON.parse(res.body) as Who, set: sessionCookie(res) };
    }
    /** `node` holds the session (delta); with the backup manager: its copy is placed (the node asked may fetch it). */
    const held = (node: string, cookie: string) =>
      manager.name === 'delta'
        ? waitFor(
            () => managerOf(cluster.node(node), PROBE).findSession(idOf(cookie)) !== undefined,
            `${node} holds it`,
          )
        : waitFor(
            () => cluster.nodes.filter((n) => managerOf(n, PROBE).sessions.has(idOf(cookie))).length === 2,
            'its backup copy placed',
          );

    test('a cookie naming another node is re-issued for this one; originalRoute keeps the other', async () => {
      const created = await whoami('a');
      const cookieA = created.set!;
      assert.equal(routeOf(cookieA), 'a');
      assert.equal(created.who.originalRoute, null);
      await held('b', cookieA);

      const atB = await whoami('b', cookieA);
      assert.equal(atB.who.id, idOf(cookieA), 'the same session');
      assert.equal(atB.who.route, 'b');
      assert.equal(atB.who.originalRoute, 'a');
      assert.equal(atB.set, `JSESSIONID=${idOf(cookieA)}.b`, 'the cookie now names b');

      const again = await whoami('b', atB.set);
      assert.equal(again.who.originalRoute, null, 'at home: no original route');
      assert.equal(again.set, undefined, 'at home: no cookie re-issued');
    });

    test('after the named node is gone, and for a route no node has', async () => {
      const created = await whoami('c');
      const cookieC = created.set!;
      await held('a', cookieC);
      await cluster.node('c').stop();
      const atA = await whoami('a', cookieC);
      assert.equal(atA.who.id, idOf(cookieC));
      assert.equal(atA.who.originalRoute, 'c');
      assert.equal(atA.set, `JSESSIONID=${idOf(cookieC)}.a`);

      const retired = await whoami('b', `JSESSIONID=${idOf(cookieC)}.retired-node`);
      assert.equal(retired.who.id, idOf(cookieC), 'found by its id whatever the route');
      assert.equal(retired.who.originalRoute, 'retired-node');
      assert.equal(retired.set, `JSESSIONID=${idOf(cookieC)}.b`);
    });
  });
}
