/**
 * sessions.serialize through every request lifecycle of the library: clowder's Express
 * middleware, the Fastify plugin and the Koa middleware, over two library-mode nodes. Each app
 * does an async read-modify-write that waits, between its read and its write, for another request
 * of the session to be between its own (or 15 ms): with serialization that never happens and no
 * increment is lost; a request that waits past serializeTimeoutMs gets 503 with Retry-After. The
 * express-session Store cannot serialize and refuses the option.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import Koa from 'koa';
import { ClowderStore } from '../../../src/http/express-session-store.js';
import { clowderSession } from '../../../src/http/fastify.js';
import { clowderKoa } from '../../../src/http/koa.js';
import type { SessionCluster } from '../../../src/index.js';
import { CookieJar, closeClient, get, type HttpResponse, throwFailures } from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';
import { close, listen, type Pair, startPair } from './pair.js';

const TIMEOUT_MS = 1500;

/** The shared read-modify-write: `read` and `write` are the framework's session accessors. */
class Rmw {
  inside = 0;
  maxInside = 0;
  holding = 0;
  #partners: (() => void)[] = [];
  #gate: { promise: Promise<void>; open: () => void } | undefined;

  closeGate(): void {
    let open!: () => void;
    const promise = new Promise<void>((r) => {
      open = r;
    });
    this.#gate = { promise, open };
  }
  openGate(): void {
    this.#gate?.open();
    this.#gate = undefined;
  }

  async run(path: string, read: () => number | undefined, write: (n: number) => void): Promise<string> {
    if (path === '/hold') {
      this.holding++;
      await this.#gate?.promise;
      this.holding--;
      write((read() ?? 0) + 100);
      return 'held';
    }
    const n = read() ?? 0;
    this.inside++;
    this.maxInside = Math.max(this.maxInside, this.inside);
    if (this.inside >= 2) {
      for (const wake of this.#partners) wake();
      this.#partners = [];
    } else
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 15);
        const partners = this.#partners;
        function done(): void {
          clearTimeout(timer);
          const i = partners.indexOf(done);
          if (i >= 0) partners.splice(i, 1);
          resolve();
        }
        partners.push(done);
      });
    write(n + 1);
    this.inside--;
    return `count=${n + 1}`;
  }
}

interface Framework {
  name: string;
  /** Serves `sessions` on an ephemeral port; returns its close. */
  serve(sessions: SessionCluster, rmw: Rmw): Promise<{ port: number; close(): Promise<void> }>;
}

const frameworks: Framework[] = [
  {
    name: "clowder's Express middleware",
    async serve(sessions, rmw) {
      const app = express();
      app.use(sessions.middleware());
      app.get(/.*/, async (req, res) => {
        const s = req.session as unknown as Record<string, number | undefined>;
        res.send(
          await rmw.run(
            req.path,
            () => s.count,
            (n) => (s.count = n),
          ),
        );
      });
      const server = createServer(app);
      return { port: await listen(server), close: () => close(server) };
    },
  },
  {
    name: 'Fastify',
    async serve(sessions, rmw) {
      const app: FastifyInstance = Fastify();
      await app.register(clowderSession, { sessions });
      app.get('/*', async (request) =>
        rmw.run(
          request.url,
          () => request.session!.get<number>('count'),
          (n) => request.session!.set('count', n),
        ),
      );
      await app.listen({ port: 0, host: '127.0.0.1' });
      const address = app.server.address();
      return { port: typeof address === 'object' && address ? address.port : 0, close: () => app.close() };
    },
  },
  {
    name: 'Koa',
    async serve(sessions, rmw) {
      const app = new Koa();
      app.use(clowderKoa(sessions));
      app.use(async (ctx) => {
        ctx.body = await rmw.run(
          ctx.path,
          () => ctx.session!.count as number | undefined,
          (n) => {
            ctx.session!.count = n;
          },
        );
      });
      const server: Server = createServer(app.callback());
      return { port: await listen(server), close: () => close(server) };
    },
  },
];

const countOf = (r: HttpResponse): number => Number(/count=(\d+)/.exec(r.body)?.[1]);

describe('sessions.serialize in every request lifecycle (two library-mode nodes)', () => {
  let pair: Pair;
  before(async () => {
    pair = await startPair({ serialize: true, serializeTimeoutMs: TIMEOUT_MS });
  });
  after(async () => {
    await pair?.stop();
    closeClient();
  });

  for (const fw of frameworks) {
    describe(fw.name, () => {
      const rmw = new Rmw();
      let servers: { port: number; close(): Promise<void> }[] = [];
      before(async () => {
        servers = [await fw.serve(pair.x, rmw), await fw.serve(pair.y, rmw)];
      });
      after(async () => {
        throwFailures(await Promise.allSettled(servers.map((s) => s.close())), 'closing the servers');
      });

      test('12 concurrent async read-modify-writes over both nodes lose nothing; one at a time', async () => {
        const jar = new CookieJar();
        assert.equal(countOf(await jar.get(servers[0]!.port, '/rmw')), 1);
        const responses = await Promise.all(
          Array.from({ length: 12 }, (_, i) => get(servers[i % 2]!.port, '/rmw', jar.cookie)),
        );
        assert.deepEqual(
          responses.map((r) => r.status),
          Array(12).fill(200),
        );
        assert.equal(rmw.maxInside, 1, 'never two requests of the session between read and write');
        assert.deepEqual(
          responses.map(countOf).sort((a, b) => a - b),
          Array.from({ length: 12 }, (_, i) => i + 2),
        );
        for (const m of [pair.x.manager, pair.y.manager]) {
          assert.equal(m.serializer.waiting, 0);
          assert.equal(m.stats().ownershipTimeouts, 0);
        }
      });

      test('a request that waits past serializeTimeoutMs gets 503 with Retry-After; the holder is unaffected', async () => {
        const jar = new CookieJar();
        assert.equal(countOf(await jar.get(servers[0]!.port, '/rmw')), 1);
        const m = pair.x.manager;
        const timeouts = m.stats().serializeTimeouts as number;
        rmw.closeGate();
        const hold = get(servers[0]!.port, '/hold', jar.cookie);
        await waitFor(() => rmw.holding === 1, 'the /hold request to hold the session');
        const late = await get(servers[0]!.port, '/rmw', jar.cookie);
        assert.equal(late.status, 503);
        assert.equal(late.headers['retry-after'], '1');
        assert.match(late.body, /sessions\.serialize/);
        assert.equal(m.stats().serializeTimeouts, timeouts + 1);
        rmw.openGate();
        assert.equal((await hold).status, 200);
        assert.equal(countOf(await get(servers[1]!.port, '/rmw', jar.cookie)), 102, 'the 503 changed nothing');
        assert.equal(m.serializer.waiting, 0);
      });
    });
  }

  test('the express-session Store refuses sessions.serialize (its get cannot be tied to its request)', () => {
    assert.throws(() => new ClowderStore(pair.x), /sessions\.serialize is not supported with express-session/);
  });
});
