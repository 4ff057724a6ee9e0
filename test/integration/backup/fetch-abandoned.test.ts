/**
 * A client that goes away while its node fetches the session (BackupManager) abandons the
 * request: the application never runs (it used to run with no session, and an application that
 * reads req.session failed), and the session is unchanged.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { RequestSession } from '../../../src/http/request-session.js';
import type { ClusterNode } from '../../../src/index.js';
import type { BackupManager } from '../../../src/session/backup-manager.js';
import { Msg } from '../../../src/session/messages.js';
import { CookieJar, countOf, get, managerOf, portOf, startNodes, type TestCluster } from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';

const backup = (n: ClusterNode) => managerOf(n) as unknown as BackupManager;
type Hook = { receiveOther(msg: unknown[], from: unknown): boolean };

describe('BackupManager: a client gone while its node fetches the session', () => {
  let cluster: TestCluster;
  const held: (() => void)[] = [];
  let holding = false;
  before(async () => {
    cluster = await startNodes(3, { sessions: { manager: 'backup', backups: 1 } });
    // Every node answers FETCH only when the test releases it (while `holding`).
    for (const n of cluster.nodes) {
      const m = backup(n) as unknown as Hook;
      const handle = m.receiveOther.bind(m);
      m.receiveOther = (msg, from) => {
        if (msg[0] === Msg.FETCH && holding) {
          held.push(() => handle(msg, from));
          return true;
        }
        return handle(msg, from);
      };
    }
  });
  after(() => cluster.stop());

  test('the application does not run, the session is unchanged', async () => {
    const a = cluster.node('a');
    const jar = new CookieJar();
    await jar.get(portOf(a), '/app/counter');
    await jar.get(portOf(a), '/app/counter');
    const asker = cluster.nodes.find((n) => !managerOf(n).sessions.has(jar.id))!;
    assert.ok(asker, 'a node that does not hold the session');
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      holding = true;
      const fetchesBefore = backup(asker).stats().fetches;
      // The request, then the client goes away once the node asked for the session.
      const socket = connect(portOf(asker), '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(`GET /app/counter HTTP/1.1\r\nHost: x\r\nCookie: ${jar.cookie}\r\n\r\n`);
      await waitFor(() => held.length > 0, 'a holder to receive the FETCH');
      // The node sees the client go away (the response closes: RequestSession.finish) before the
      // fetch is answered.
      let finished = 0;
      const finish = RequestSession.prototype.finish;
      RequestSession.prototype.finish = function (this: RequestSession) {
        finished++;
        return finish.call(this);
      };
      try {
        socket.destroy();
        await waitFor(() => finished > 0, 'the node to see the client gone');
      } finally {
        RequestSession.prototype.finish = finish;
      }
      holding = false;
      for (const release of held.splice(0)) release();
      await waitFor(() => backup(asker).stats().fetches > fetchesBefore, 'the fetch to end');
      // The fetch's continuation, the application and its warning (nextTick) all run in the
      // microtasks after the fetch ended: one event-loop turn later, whatever was to happen did.
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(
        warnings.filter((w) => w.includes('application error')),
        [],
        'the application did not run',
      );
      assert.equal(countOf((await get(portOf(a), '/app/counter', jar.cookie)).body), 3, 'the session was not changed');
    } finally {
      process.off('warning', onWarning);
    }
  });
});
