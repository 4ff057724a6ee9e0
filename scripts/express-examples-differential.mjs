#!/usr/bin/env node
/**
 * Differential check of the drop-in claim on express's own examples (not on apps written for
 * clowder): express's `examples/auth` and `examples/session`, unchanged except for their
 * `app.use(session({...}))` line, answer one scripted client response by response the same
 *   (a) on express-session 1.19 + MemoryStore, one process (the example file as it is),
 *   (b) on clowder's middleware (`sessions.middleware()`), two processes, and
 *   (c) on express-session with `store: new ClowderStore(sessions)` (clowder/express-session),
 *       two processes,
 * through login on the first process, failover (the first process is SIGKILLed once its sessions
 * reached the second), and logout on the second. Not part of `npm test`: it needs express's
 * examples and installs their dependencies from the npm registry.
 *
 *   npm run build
 *   node scripts/express-examples-differential.mjs <express checkout or package with examples/>
 *
 * e.g. `git clone -b v5.2.1 https://github.com/expressjs/express`. It copies examples/auth and
 * examples/session to a temporary directory outside this repository, where `require('../..')`
 * (express, in the examples) is the installed express of the checkout's version; installs there
 * express-session 1.19.0, the examples' other modules at the checkout's versions (pbkdf2-password,
 * ejs for auth's views) and this repository's dist/ as `clowder` (npm pack, then install the
 * tarball); writes variants (b) and (c) of each example next to it with the substitution it prints;
 * starts every process through a runner that requires the app and listens on an ephemeral port
 * (as the example's own `if (!module.parent) app.listen(3000)` would); and compares each response's
 * status, Content-Type, body, Location, and session cookie (set or not, new id or not, attributes;
 * Expires as the lifetime it gives), as test/integration/drop-in/express-session-differential.test.ts
 * does for its own fixture apps (the client: scripts/differential-client.mjs). Nothing is
 * normalised. The one difference allowed is in (b): clowder re-issues the cookie on the process
 * that takes over (its route changed), and that cookie must have the attributes of the cookie the
 * client had. (c) must answer exactly as (a). (b)'s session options say express-session's defaults
 * to clowder: `cookieName: 'connect.sid'` and `cookie: { sameSite: false }` (clowder's own default
 * adds SameSite=Lax, which express-session does not send).
 *
 * Prints PASS/FAIL per example and variant with the first difference; exits 1 on any FAIL, 2 on
 * a setup error. Removes its directory and ends every process it started (by PID), also on failure.
 */
import { execFileSync, fork } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COOKIE, firstDifference, runScript, unmetExpectation } from './differential-client.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const EXPRESS_SESSION = '1.19.0';
const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'];

function fail(message) {
  console.error(`express-examples-differential: ${message}`);
  process.exitCode = 2;
  throw new SetupError(message);
}
class SetupError extends Error {}

/** The environment for npm and the processes: none of an outer npm run's or clowder's settings. */
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith('npm_') && !k.startsWith('CLOWDER_')),
);

// ---------------------------------------------------------------------------------------------
// The client scripts. `failover`: the first process is killed before this step, which goes to the
// second. `oldCookieOf: i`: send the cookie the client sent at step i (a stale cookie). `expect`:
// what (a) must show, so that the script proves what it says on express-session itself.

const TJ = { username: 'tj', password: 'foobar' };
/** What a browser sends with the login form's POST: the page it came from (examples/auth redirects there). */
const FROM_LOGIN_PAGE = 'http://app.example/login';

const SCRIPTS = {
  auth: [
    { say: 'home redirects to the login form', path: '/', expect: { status: 302, cookie: 'none' } },
    { say: 'login form, no message', path: '/login', expect: { status: 200, cookie: 'none' } },
    {
      say: 'restricted without login: denied, flash stored',
      path: '/restricted',
      expect: { status: 302, cookie: 'new' },
    },
    { say: 'login form shows "Access denied!"', path: '/login', expect: { body: 'Access denied!' } },
    { say: 'login form again: the flash was consumed', path: '/login', expect: { notBody: 'msg' } },
    {
      say: 'wrong password',
      method: 'POST',
      path: '/login',
      form: { username: 'tj', password: 'wrong' },
      referer: FROM_LOGIN_PAGE,
      expect: { status: 302 },
    },
    { say: 'login form shows the failure', path: '/login', expect: { body: 'Authentication failed' } },
    {
      say: 'login as tj/foobar (regenerate)',
      method: 'POST',
      path: '/login',
      form: TJ,
      referer: FROM_LOGIN_PAGE,
      expect: { status: 302, cookie: 'new' },
    },
    { say: 'back on the login form: the success flash', path: '/login', expect: { body: 'Authenticated as tj' } },
    { say: 'home after login', path: '/', expect: { status: 302 } },
    { say: 'restricted as tj', path: '/restricted', expect: { status: 200, body: 'Wahoo!' } },
    {
      say: 'restricted after failover (second process)',
      path: '/restricted',
      failover: true,
      expect: { status: 200, body: 'Wahoo!' },
    },
    { say: 'logout (destroy) on the second process', path: '/logout', expect: { status: 302, cookie: 'none' } },
    { say: 'restricted after logout: denied', path: '/restricted', expect: { status: 302, cookie: 'new' } },
    { say: 'login form shows "Access denied!"', path: '/login', expect: { body: 'Access denied!' } },
    {
      say: 'the cookie from before the logout is dead',
      path: '/restricted',
      oldCookieOf: 12,
      expect: { status: 302, cookie: 'new' },
    },
  ],
  session: [
    { say: 'first visit', path: '/', expect: { body: 'First time visiting?', cookie: 'new' } },
    { say: 'second view', path: '/', expect: { body: '<strong>2</strong>', cookie: 'none' } },
    { say: 'third view', path: '/', expect: { body: '<strong>3</strong>' } },
    {
      say: 'fourth view after failover (second process)',
      path: '/',
      failover: true,
      expect: { body: '<strong>4</strong>' },
    },
    { say: 'fifth view', path: '/', expect: { body: '<strong>5</strong>' } },
    { say: 'a new client on the second process', path: '/', fresh: true, expect: { body: 'First time visiting?' } },
  ],
};

// ---------------------------------------------------------------------------------------------
// Processes: every child is tracked by PID from the moment it is forked, and ended on exit.

const children = new Map(); // pid -> ChildProcess

function startProcess(dir, appFile, options, label) {
  const child = fork(join(dir, 'runner.cjs'), [], {
    cwd: dir,
    env: {
      ...env,
      CLOWDER_EXAMPLE_APP: appFile,
      ...(options ? { CLOWDER_EXAMPLE_OPTIONS: JSON.stringify(options) } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  children.set(child.pid, child);
  let output = '';
  child.stdout.on('data', (d) => {
    output += d;
  });
  child.stderr.on('data', (d) => {
    output += d;
  });
  const pending = new Map();
  let seq = 0;
  child.on('message', (m) => {
    const p = pending.get(m?.id);
    if (p) {
      pending.delete(m.id);
      p(m);
    }
  });
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  exited.then(() => children.delete(child.pid));
  const proc = {
    label,
    pid: child.pid,
    port: 0,
    output: () => output,
    exited,
    /** The process's cluster view: members seen, sessions held (id → version). */
    state() {
      const id = ++seq;
      return new Promise((r, reject) => {
        pending.set(id, r);
        child.send({ id, q: 'state' }, (err) => err && reject(err));
      });
    },
  };
  const listening = new Promise((r, reject) => {
    child.on('message', (m) => {
      if (m?.port) {
        proc.port = m.port;
        r(proc);
      }
    });
    exited.then(({ code, signal }) =>
      reject(new Error(`${label} exited (${signal ?? code}) before listening:\n${output}`)),
    );
  });
  return listening;
}

async function kill(proc) {
  if (!children.has(proc.pid)) return;
  process.kill(proc.pid, 'SIGKILL');
  await proc.exited;
}

function killAllSync() {
  for (const pid of children.keys()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}

async function poll(condition, what, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The session options of (b): express-session's defaults the examples rely on, said to clowder —
 * its cookie name, and no SameSite attribute (clowder's default is SameSite=Lax, express-session
 * sends none unless told). (c) uses them too, where express-session makes the cookie anyway.
 */
const SESSION_OPTIONS = { cookieName: COOKIE, cookie: { sameSite: false } };

function clusterOptions(name, membership) {
  return {
    channel: { name, ...membership, insecure: true, receiver: { port: 0 } },
    sessions: SESSION_OPTIONS,
  };
}

/** Runs one variant: `file` on `nodes` processes; returns the transcript. */
async function runVariant(dir, file, nodes, script) {
  const procs = [];
  try {
    if (nodes === 1) procs.push(await startProcess(dir, file, undefined, 'node1'));
    else {
      // A multicast group of its own (loopback, TTL 0): a random port and domain.
      const membership = {
        domain: `ex${Math.random().toString(36).slice(2, 10)}`,
        membership: {
          type: 'multicast',
          port: 40000 + Math.floor(Math.random() * 20000),
          frequencyMs: 100,
          dropTimeMs: 1000,
        },
      };
      const started = await Promise.all(
        ['node1', 'node2'].map((n) => startProcess(dir, file, clusterOptions(n, membership), n)),
      );
      procs.push(...started);
      await poll(
        async () => (await Promise.all(procs.map((p) => p.state()))).every((s) => s.members === 1),
        'the two processes to see each other',
      );
    }
    let current = 0;
    return await runScript(script, {
      port: () => procs[current].port,
      failover: async () => {
        if (nodes === 1) return;
        const [x, y] = procs;
        await poll(async () => {
          const [sx, sy] = await Promise.all([x.state(), y.state()]);
          const held = new Map(sy.sessions);
          return sx.sessions.every(([id, version]) => held.get(id) === version);
        }, 'the second process to hold every session of the first at its version');
        await kill(x);
        await poll(async () => (await y.state()).members === 0, 'the second process to see the first gone');
        current = 1;
      },
    });
  } catch (err) {
    for (const p of procs) if (p.output().trim()) err.message += `\n--- ${p.label} output:\n${p.output()}`;
    throw err;
  } finally {
    await Promise.all(procs.map(kill));
  }
}

// ---------------------------------------------------------------------------------------------
// Setup: the examples, their modules, clowder, the runner, the substitutions.

const RUNNER = `'use strict'
// Starts one of express's examples as its own \`if (!module.parent) app.listen(3000)\` would, but
// on an ephemeral port on 127.0.0.1 (written by clowder's scripts/express-examples-differential.mjs).
const crypto = require('node:crypto')
const http = require('node:http')

// The app's asynchronous start-up work (examples/auth hashes tj's password) ends before it listens.
let pending = 0
for (const name of ['randomBytes', 'pbkdf2']) {
  const original = crypto[name]
  crypto[name] = function (...args) {
    const cb = args[args.length - 1]
    if (typeof cb !== 'function') return original.apply(this, args)
    pending++
    args[args.length - 1] = function (...r) {
      try { return cb.apply(this, r) } finally { pending-- }
    }
    return original.apply(this, args)
  }
}

// The examples require express as '../..' (the express checkout): here, this directory. Apps are
// recorded as express creates them: examples/session does not export its app.
const express = require(__dirname)
const created = []
const init = express.application.init
express.application.init = function () {
  created.push(this)
  return init.apply(this, arguments)
}
const exported = require(process.env.CLOWDER_EXAMPLE_APP)
const app = typeof exported === 'function' && typeof exported.handle === 'function' ? exported : created[0]
if (typeof app !== 'function') throw new Error('no express app created by ' + process.env.CLOWDER_EXAMPLE_APP)

process.on('disconnect', () => process.exit(0)) // the driver is gone
;(async () => {
  const deadline = Date.now() + 10000
  while (pending > 0) {
    if (Date.now() > deadline) throw new Error('the app start-up work did not finish')
    await new Promise((r) => setTimeout(r, 10))
  }
  // Variants (b) and (c): the cluster the app's session line created; serve only once it has joined.
  const sessions = process.env.CLOWDER_EXAMPLE_OPTIONS ? require('./clowder-sessions.cjs') : undefined
  if (sessions) await sessions.start()
  process.on('message', (m) => {
    if (m && m.q === 'state')
      process.send({
        id: m.id,
        members: sessions ? sessions.channel.members().length : 0,
        sessions: sessions ? [...sessions.manager.sessions.values()].map((s) => [s.id, s.version]) : [],
      })
  })
  const server = http.createServer(app)
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
})().catch((err) => {
  console.error(err)
  process.exit(1)
})
`;

const SESSIONS_MODULE = `'use strict'
// This process's clowder cluster, required by the examples' rewritten session line (written by
// clowder's scripts/express-examples-differential.mjs). Options from the environment: the two
// processes of a variant share a multicast group of their own; cookieName is express-session's.
const { createSessions, silentLogger } = require('clowder')
module.exports = createSessions(JSON.parse(process.env.CLOWDER_EXAMPLE_OPTIONS), { logger: silentLogger })
`;

/** The express-session line(s) of an example, and the two substitutions. */
function substitutions(name, source) {
  const lines = source.match(/app\.use\(session\(\{[\s\S]*?\}\)\);?/g) ?? [];
  if (lines.length !== 1) fail(`examples/${name}: expected one app.use(session({...})) line, found ${lines.length}`);
  const line = lines[0];
  const sessions = "var sessions = require('../../clowder-sessions.cjs');";
  return {
    line,
    b: { from: line, to: `${sessions} app.use(sessions.middleware());` },
    c: {
      from: 'app.use(session({',
      to: `${sessions} var ClowderStore = require('clowder/express-session').ClowderStore;\napp.use(session({ store: new ClowderStore(sessions),`,
    },
  };
}

function copyTree(from, to) {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from)) {
    const f = join(from, entry);
    if (statSync(f).isDirectory()) copyTree(f, join(to, entry));
    else writeFileSync(join(to, entry), readFileSync(f));
  }
}

const VARIANTS = [
  { key: 'b', what: "clowder's middleware, 2 processes", nodes: 2, reissue: true },
  { key: 'c', what: 'express-session + ClowderStore, 2 processes', nodes: 2, reissue: false },
];

async function main() {
  const source = resolve(process.argv[2] ?? '');
  const expressPkgFile = join(source, 'package.json');
  if (!existsSync(expressPkgFile)) fail('give the path of an express checkout (with examples/)');
  const expressPkg = JSON.parse(readFileSync(expressPkgFile, 'utf8'));
  if (expressPkg.name !== 'express') fail(`${source} is not express (package.json name ${expressPkg.name})`);
  for (const name of Object.keys(SCRIPTS))
    if (!existsSync(join(source, 'examples', name, 'index.js'))) fail(`missing examples/${name}/index.js`);
  if (!existsSync(join(repo, 'dist/express-session.js'))) fail('build clowder first: npm run build');
  const authSource = readFileSync(join(source, 'examples/auth/index.js'), 'utf8');
  if (!authSource.includes("tj: { name: 'tj' }") || !authSource.includes("password: 'foobar'"))
    fail("examples/auth no longer has the user tj with the password 'foobar' this script logs in with");

  const dir = mkdtempSync(join(tmpdir(), 'clowder-express-examples-'));
  const cleanup = () => {
    killAllSync();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM'])
    process.once(signal, () => {
      cleanup();
      process.exit(130);
    });
  console.log(`express-examples-differential: express ${expressPkg.version} examples from ${source}`);
  console.log(`working in ${dir}`);

  // 1. The examples; what they require; express as '../..'; clowder packed from this repository.
  const deps = { express: expressPkg.version, 'express-session': EXPRESS_SESSION };
  const declared = { ...expressPkg.devDependencies, ...expressPkg.dependencies };
  for (const name of Object.keys(SCRIPTS)) {
    copyTree(join(source, 'examples', name), join(dir, 'examples', name));
    const text = readFileSync(join(dir, 'examples', name, 'index.js'), 'utf8');
    const modules = [...text.matchAll(/require\('([^'.][^']*)'\)/g)].map((m) => m[1]);
    const engine = text.match(/app\.set\('view engine', '([^']+)'\)/);
    if (engine) modules.push(engine[1]);
    for (const m of modules)
      if (!m.startsWith('node:') && deps[m] === undefined) {
        if (declared[m] === undefined) fail(`examples/${name} requires ${m}, which express does not declare`);
        deps[m] = declared[m];
      }
  }
  writeFileSync(
    join(dir, 'index.js'),
    "// The examples require express as '../..': the installed express of the checkout's version.\nmodule.exports = require('express')\n",
  );
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir, '--loglevel=error'], {
      cwd: repo,
      env,
      maxBuffer: 64 * 1024 * 1024,
    }).toString(),
  );
  deps.clowder = `file:./${packed[0].filename}`;
  writeFileSync(
    join(dir, 'package.json'),
    `${JSON.stringify({ name: 'express-examples', version: '0.0.0', private: true, main: 'index.js', dependencies: deps }, null, 2)}\n`,
  );
  console.log(
    `npm install ${Object.entries(deps)
      .map(([n, v]) => `${n}@${v}`)
      .join(' ')}`,
  );
  execFileSync('npm', ['install', ...NPM_FLAGS], {
    cwd: dir,
    env: { ...env, CLOWDER_SKIP_NATIVE: '1' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  writeFileSync(join(dir, 'runner.cjs'), RUNNER);
  writeFileSync(join(dir, 'clowder-sessions.cjs'), SESSIONS_MODULE);
  console.log(`\nclowder-sessions.cjs (required by the rewritten session lines):\n${indent(SESSIONS_MODULE)}`);
  console.log(
    `  CLOWDER_EXAMPLE_OPTIONS: ${JSON.stringify(clusterOptions('node1|node2', { domain: '<random>', membership: { type: 'multicast', port: '<random>' } }))}`,
  );

  // 2. Per example: (a), then (b) and (c) against it.
  const results = [];
  for (const [name, script] of Object.entries(SCRIPTS)) {
    const file = join(dir, 'examples', name, 'index.js');
    const original = readFileSync(file, 'utf8');
    const sub = substitutions(name, original);
    console.log(`\n=== examples/${name}\n  the session line:\n${indent(sub.line, 4)}`);
    let a;
    try {
      a = await runVariant(dir, file, 1, script);
    } catch (err) {
      results.push(report(name, 'a', 'express-session + MemoryStore, 1 process', `error: ${err.message}`));
      continue;
    }
    const unmet = unmetExpectation(script, a);
    results.push(
      report(name, 'a', 'express-session + MemoryStore, 1 process (the baseline)', unmet && `baseline: ${unmet}`),
    );
    console.log(indent(a.map((t, i) => summary(script[i], t, i)).join('\n'), 4));
    for (const v of VARIANTS) {
      const { from, to } = sub[v.key];
      const variantFile = join(dir, 'examples', name, `index.${v.key}.js`);
      writeFileSync(variantFile, original.replace(from, to));
      console.log(`  (${v.key}) substitution:\n${indent(`- ${from}`, 4)}\n${indent(`+ ${to}`, 4)}`);
      const notes = [];
      let difference;
      try {
        difference = firstDifference(script, a, await runVariant(dir, variantFile, v.nodes, script), v.reissue, notes);
      } catch (err) {
        difference = `error: ${err.message}`;
      }
      results.push(report(name, v.key, v.what, difference, notes));
    }
  }

  const failed = results.filter((r) => !r.pass);
  console.log(`\n${results.length - failed.length} PASS, ${failed.length} FAIL`);
  for (const r of results) console.log(`  ${r.pass ? 'PASS' : 'FAIL'} ${r.name} (${r.key}) ${r.what}`);
  process.exitCode = failed.length === 0 ? 0 : 1;
}

function report(name, key, what, difference, notes = []) {
  const pass = !difference;
  console.log(`  ${pass ? 'PASS' : 'FAIL'} examples/${name} (${key}) ${what}`);
  if (!pass) console.log(indent(difference, 6));
  for (const n of notes) console.log(indent(n, 6));
  return { name, key, what, pass };
}

function summary(step, t, i) {
  const cookie =
    t.cookie === null
      ? ''
      : t.cookie.error
        ? ` ${t.cookie.error}`
        : ` set-cookie(${t.cookie.newId ? 'new id' : 'same id'}; ${Object.entries(t.cookie.attrs)
            .map(([k, v]) => (v ? `${k}=${v}` : k))
            .join('; ')})`;
  const body = t.body.replace(/\s+/g, ' ').slice(0, 60);
  return `${String(i).padStart(2)} ${(step.method ?? 'GET').padEnd(4)} ${step.path.padEnd(11)} → ${t.status}${t.location ? ` ${t.location}` : ''}${cookie}  ${JSON.stringify(body)}${step.failover ? '  [after failover]' : ''}`;
}

function indent(text, n = 2) {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => ' '.repeat(n) + l)
    .join('\n');
}

main().catch((err) => {
  if (!(err instanceof SetupError)) {
    console.error(err);
    process.exitCode = 2;
  }
});
