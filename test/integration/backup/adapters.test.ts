/**
 * The framework adapters with the BackupManager: three library-mode instances (k = 1), a session
 * made on one, then used on the instance that holds no copy — it fetches the session and goes on
 * from its latest value: through koa (clowder/koa) and through express-session with ClowderStore.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import session from 'express-session';
import Koa from 'koa';
import { ClowderStore } from '../../../src/http/express-session-store.js';
import { clowderKoa } from '../../../src/http/koa.js';
import { createSessions, type SessionCluster, silentLogger } from '../../../src/index.js';
import { CookieJar, closeClient, get, throwFailures } from '../../helpers/http.js';
import { isolatedMulticast, waitFor } from '../../helpers/wait.js';
import { close, listen } from '../adapters/pair.js';

const NAMES = ['x', 'y', 'z'];

async function startThree(): Promise<SessionCluster[]> {
  const { port, domain } = isolatedMulticast();
  const all = NAMES.map((name) =>
    createSessions(
      {
        channel: {
          name,
          domain,
          receiver: { port: 0 },
          membership: { type: 'multicast', port, frequencyMs: 100, dropTimeMs: 1000 },
        },
        sessions: { manager: 'backup', backups: 1 },
      },
      { logger: silentLogger },
    ),
  );
  await Promise.all(all.map((s) => s.start()));
  await waitFor(() => all.every((s) => s.channel.members().length === 2), 'three instances to see each other');
  return all;
}

const holders = (all: SessionCluster[], id: string) => all.filter((s) => s.manager.sessions.has(id));

describe('adapters fetch sessions they do not hold (BackupManager, 3 instances)', () => {
  let all: SessionCluster[] = [];
  const servers: Server[] = [];
  before(async () => {
    all = await startThree();
  });
  after(async () => {
    await Promise.all(servers.map(close));
    closeClient();
    throwFailures(await Promise.allSettled(all.map((s) => s.stop())), 'cleaning up');
  });

  test('koa', async () => {
    const ports: number[] = [];
    for (const s of all) {
      const app = new Koa();
      app.use(clowderKoa(s));
      app.use((ctx) => {
        ctx.session!.n = ((ctx.session!.n as number | undefined) ?? 0) + 1;
        ctx.body = { n: ctx.session!.n };
      });
      const server = createServer(app.callback());
      servers.push(server);
      ports.push(await listen(server));
    }
    const jar = new CookieJar();
    await jar.get(ports[0]!, '/');
    assert.equal(JSON.parse((await jar.get(ports[0]!, '/')).body).n, 2);
    const id = jar.id;
    await waitFor(() => holders(all, id).length === 2, 'the copy placed');
    const outsider = all.findIndex((s) => !s.manager.sessions.has(id));
    const res = await jar.get(ports[outsider]!, '/');
    assert.equal(JSON.parse(res.body).n, 3, 'fetched, and continued from the latest value');
  });

  test('express-session with ClowderStore', async () => {
    const ports: number[] = [];
    for (const s of all) {
      const app = express();
      app.use(
        session({ store: new ClowderStore(s), secret: 'backup-test-secret', resave: false, saveUninitialized: false }),
      );
      app.get('/inc', (req, res) => {
        const es = req.session as unknown as { n?: number };
        es.n = (es.n ?? 0) + 1;
        res.json({ n: es.n, id: req.sessionID });
      });
      const server = createServer(app);
      servers.push(server);
      ports.push(await listen(server));
    }
    const jar = new CookieJar('connect.sid');
    const first = JSON.parse((await jar.get(ports[0]!, '/inc')).body) as { id: string };
    assert.equal(JSON.parse((await jar.get(ports[0]!, '/inc')).body).n, 2);
    await waitFor(() => holders(all, first.id).length === 2, 'the copy placed');
    const outsider = all.findIndex((s) => !s.manager.sessions.has(first.id));
    const res = await get(ports[outsider]!, '/inc', jar.cookie);
    assert.equal(JSON.parse(res.body).n, 3, 'fetched, and continued from the latest value');
  });
});
