/**
 * Which session a Cookie header selects, over real sockets: `JSESSIONID=` inside another cookie's
 * value never selects a session (a value a site reflects into one of its cookies cannot plant or
 * steal one); with several JSESSIONID cookies (set for different paths: the browser sends the most
 * specific first) the first that names a session this node holds wins, and a client-chosen id is
 * never adopted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ClusterNode, DeltaManager } from '../../src/index.js';
import {
  countOf,
  field,
  get,
  idOf,
  managerOf,
  portOf,
  sessionCookie,
  startNodes,
  type TestCluster,
} from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

describe('session cookie selection', () => {
  let cluster: TestCluster;
  let a: ClusterNode;
  let manager: DeltaManager;
  before(async () => {
    cluster = await startNodes(1);
    a = cluster.node('a');
    manager = managerOf(a);
  });
  after(async () => {
    await cluster?.stop();
  });

  /** A new session on a with count 1; returns its cookie value `<id>.a`. */
  async function newSession(): Promise<string> {
    const res = await get(portOf(a), '/app/counter');
    assert.equal(countOf(res.body), 1);
    const c = sessionCookie(res)!;
    return c.slice(c.indexOf('=') + 1);
  }

  /** The request with this Cookie header: which session it used (a new one has count 1). */
  async function counter(cookie: string): Promise<{ id: string; count: number; newCookie: string | undefined }> {
    const res = await get(portOf(a), '/app/counter', cookie);
    assert.equal(res.status, 200, res.body);
    return { id: field(res.body, 'id')!, count: countOf(res.body), newCookie: sessionCookie(res) };
  }

  test('JSESSIONID= inside another cookie value does not select that session', async () => {
    const victim = await newSession();
    const id = idOf(`JSESSIONID=${victim}`);
    for (const header of [
      `other=a JSESSIONID=${victim}`,
      `other=a\tJSESSIONID=${victim}`,
      `x="JSESSIONID=${victim}"`,
      `x=" JSESSIONID=${victim}"`,
      `x= JSESSIONID=${victim}`,
      `x=JSESSIONID=${victim}`,
      `a=1; other=a JSESSIONID=${victim}; b=2`,
      `xJSESSIONID=${victim}`,
      `JSESSIONIDx=${victim}`,
      `jsessionid=${victim}`,
      `JSESSIONID ${victim}`,
    ]) {
      const r = await counter(header);
      assert.notEqual(r.id, id, `${header} selected the victim's session`);
      assert.equal(r.count, 1, `${header}: a fresh session`);
      assert.ok(r.newCookie, `${header}: a fresh cookie is issued`);
    }
    assert.equal(manager.sessions.get(id)?.getAttribute('count'), 1, "the victim's session was never used");
  });

  test('the session cookie is still found among others, quoted, and with spaces around it', async () => {
    const mine = await newSession();
    const id = idOf(`JSESSIONID=${mine}`);
    let expected = 1;
    for (const header of [
      `a=b;JSESSIONID=${mine}`,
      `a=b; JSESSIONID="${mine}"; c=d`,
      `a="x;y"; JSESSIONID=${mine}`,
      ` JSESSIONID = ${mine} ;x=1`,
    ]) {
      const r = await counter(header);
      assert.equal(r.id, id, header);
      assert.equal(r.count, ++expected, header);
    }
  });

  test('two JSESSIONID cookies, the first unknown or malformed: the second, valid one is used', async () => {
    const valid = await newSession();
    const id = idOf(`JSESSIONID=${valid}`);
    let expected = 1;
    for (const first of ['0123456789ABCDEF0123456789ABCDEF.a', 'garbage', '', `${id.toLowerCase()}.a`]) {
      const r = await counter(`JSESSIONID=${first}; JSESSIONID=${valid}`);
      assert.equal(r.id, id, `first ${JSON.stringify(first)}`);
      assert.equal(r.count, ++expected);
      assert.equal(r.newCookie, undefined, 'the session cookie is not re-issued');
    }
  });

  test('two JSESSIONID cookies, the first invalidated or expired: the second is used', async () => {
    const valid = await newSession();
    const id = idOf(`JSESSIONID=${valid}`);
    // Invalidated: the cookie names a session that is gone.
    const gone = await newSession();
    assert.match((await get(portOf(a), '/app/invalidate', `JSESSIONID=${gone}`)).body, /invalidated=1/);
    let r = await counter(`JSESSIONID=${gone}; JSESSIONID=${valid}`);
    assert.equal(r.id, id);
    assert.equal(r.count, 2);
    // Expired: idle longer than its timeout, still held until someone looks.
    const stale = await newSession();
    const staleId = idOf(`JSESSIONID=${stale}`);
    await get(portOf(a), '/app/expire-soon?seconds=1', `JSESSIONID=${stale}`);
    const s = manager.sessions.get(staleId)!;
    await waitFor(() => s.idleMs(Date.now()) > 1100, 'the stale session to pass its timeout', { timeoutMs: 15_000 });
    r = await counter(`JSESSIONID=${stale}; JSESSIONID=${valid}`);
    assert.equal(r.id, id);
    assert.equal(r.count, 3);
    assert.equal(manager.sessions.has(staleId), false, 'the expired session was expired, not revived');
  });

  test('two valid JSESSIONID cookies: the first (the most specific path) is used', async () => {
    const one = await newSession();
    const two = await newSession();
    const r = await counter(`JSESSIONID=${one}; JSESSIONID=${two}`);
    assert.equal(r.id, idOf(`JSESSIONID=${one}`));
    assert.equal(r.count, 2);
    assert.equal(manager.sessions.get(idOf(`JSESSIONID=${two}`))?.getAttribute('count'), 1);
  });

  test('several JSESSIONID cookies naming no session: a fresh id, none of them adopted', async () => {
    const chosen = [
      '0123456789ABCDEF0123456789ABCDEF',
      'FEDCBA9876543210FEDCBA9876543210',
      'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    ];
    const r = await counter(chosen.map((c) => `JSESSIONID=${c}.a`).join('; '));
    assert.equal(r.count, 1);
    assert.ok(!chosen.includes(r.id), 'a client-chosen id was adopted');
    for (const c of chosen) assert.equal(manager.sessions.has(c), false);
  });
});
