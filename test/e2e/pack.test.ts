/**
 * clowder as a user installs it: the package is packed from a copy of this tree that has no
 * dist/ (so `prepare` must build it, as for a git or tarball install), the tarball is installed
 * into a fresh app, and that app uses it the ways the README says: ESM `import`, CommonJS
 * `require`, its TypeScript types (ESM and CJS), `npx clowder help`, and the native module's
 * install script (skipped with CLOWDER_SKIP_NATIVE=1, then run by `npm rebuild`).
 *
 * Every `exports` target must be in the tarball. An adapter subpath whose source is not in this
 * tree yet (written on another branch) is reported as pending instead.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { get, REPO } from '../helpers/node-process.js';
import { freePorts, waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'];

let dir = '';
let app = '';
let tarball = '';
let packed: string[] = [];
let present: string[] = [];
/** Environment for npm and the app: none of an outer `npm test`'s lifecycle settings. */
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith('npm_') && !k.startsWith('CLOWDER_')),
) as NodeJS.ProcessEnv;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clowder-pack-'));
  // A copy of the tree as git would check it out (tracked and untracked-but-not-ignored files):
  // no dist/, no build/.
  const src = join(dir, 'src-tree');
  const { stdout } = await run('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: REPO });
  for (const file of stdout.split('\0').filter(Boolean)) {
    if (!existsSync(join(REPO, file))) continue; // deleted in the work tree
    await mkdir(join(src, file, '..'), { recursive: true });
    await cp(join(REPO, file), join(src, file));
  }
  await symlink(join(REPO, 'node_modules'), join(src, 'node_modules'), 'dir');
  const pack = await run('npm', ['pack', '--json', '--pack-destination', dir, '--loglevel=error'], {
    cwd: src,
    env,
    maxBuffer: 16 * 1024 * 1024,
  });
  const info = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  tarball = join(dir, info[0]!.filename);
  packed = info[0]!.files.map((f) => f.path);
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as {
  exports: Record<string, string | Record<string, string>>;
  bin: Record<string, string>;
  main: string;
  types: string;
};

test('the tarball holds dist/ (built by prepare) and every exports, bin, main and types target', (t) => {
  assert.ok(packed.includes('dist/index.js'), 'dist/index.js is packed');
  const subpaths: string[] = [];
  for (const [subpath, entry] of Object.entries(pkg.exports)) {
    const targets = typeof entry === 'string' ? [entry] : Object.values(entry);
    let missing = 0;
    for (const target of targets) {
      const file = target.replace(/^\.\//, '');
      if (packed.includes(file)) continue;
      // dist/http/koa.js or .d.ts <- src/http/koa.ts
      const source = file.replace(/^dist\//, 'src/').replace(/(\.d)?\.js$|\.d\.ts$/, '.ts');
      assert.ok(
        !existsSync(join(REPO, source)),
        `exports["${subpath}"] target ${file} is missing from the tarball although ${source} exists`,
      );
      missing++;
    }
    if (missing === 0) subpaths.push(subpath);
    else t.diagnostic(`exports["${subpath}"] pending: its source is not in this tree yet`);
  }
  present = subpaths.filter((s) => s !== '.' && s !== './package.json').map((s) => `clowder${s.slice(1)}`);
  for (const target of [...Object.values(pkg.bin), pkg.main, pkg.types])
    assert.ok(packed.includes(target.replace(/^\.\//, '')), `${target} is packed`);
  for (const file of ['scripts/build-native.mjs', 'binding.gyp', 'native/gcm.c', 'examples/counter/app.mjs'])
    assert.ok(packed.includes(file), `${file} is packed`);
  assert.ok(!packed.some((f) => f.startsWith('src/') || f.startsWith('test/')), 'no sources or tests are packed');
});

test('installed from the tarball, it works from ESM, CommonJS, TypeScript and npx', async () => {
  app = join(dir, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  // The adapters' frameworks are optional peer dependencies: installed only to load the adapters.
  const PEERS: Record<string, string> = {
    'clowder/express-session': 'express-session@1.19.0',
    'clowder/koa': 'koa@3.3.0',
    'clowder/fastify': 'fastify@5.12.8',
  };
  const peers = present.flatMap((s) => (PEERS[s] ? [PEERS[s]] : []));
  // An app that keeps express-session types req.session with express-session's own types.
  const storeTypes = present.includes('clowder/express-session');
  if (storeTypes) peers.push('@types/express@5.0.6', '@types/express-session@1.19.0');
  const install = await run('npm', ['install', tarball, 'express@5.3.0', ...peers, ...NPM_FLAGS], {
    cwd: app,
    env: { ...env, CLOWDER_SKIP_NATIVE: '1' },
  });
  assert.ok(existsSync(join(app, 'node_modules/clowder/dist/index.js')), `installed:\n${install.stderr}`);
  assert.ok(!existsSync(join(app, 'node_modules/clowder/build/Release/clowder_gcm.node')), 'native build skipped');

  const [esmPort, cjsPort] = await freePorts(2);
  await writeFile(join(app, 'esm.mjs'), appSource('esm', present));
  await writeFile(join(app, 'cjs.cjs'), appSource('cjs', present));
  for (const [file, port] of [
    ['esm.mjs', esmPort],
    ['cjs.cjs', cjsPort],
  ] as const) {
    const { stdout, stderr } = await run(process.execPath, [file], {
      cwd: app,
      env: { ...env, CLUSTER_PORT: String(port) },
      timeout: 20_000,
    });
    const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
    assert.ok(line, `${file} printed its result:\n${stdout}\n${stderr}`);
    assert.deepEqual(JSON.parse(line.slice(7)), { first: 'n=1', second: 'n=2', configError: 'ERR_CLOWDER_CONFIG' });
    assert.doesNotMatch(stderr, /ExperimentalWarning|ERR_REQUIRE_ESM/, `${file} loads without warnings`);
  }

  // Types, as an app's tsc sees them: an ESM and a CommonJS file.
  await writeFile(join(app, 'check.mts'), TYPES_ESM);
  await writeFile(join(app, 'check.cts'), TYPES_CJS);
  // Each adapter subpath in the tarball resolves to its types too.
  const adapters = present.map((s, i) => `import * as adapter${i} from '${s}';\nexport { adapter${i} };\n`).join('');
  await writeFile(join(app, 'check-adapters.mts'), `${adapters}export {};\n`);
  if (storeTypes) await writeFile(join(app, 'check-store.mts'), TYPES_STORE);
  await writeFile(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
        typeRoots: [join(REPO, 'node_modules/@types')],
      },
      files: ['check.mts', 'check.cts', 'check-adapters.mts'],
    }),
  );
  const tsc = join(REPO, 'node_modules/typescript/bin/tsc');
  await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app, env }).catch((err) => {
    assert.fail(`tsc on the app failed:\n${err.stdout}${err.stderr}`);
  });
  if (storeTypes) {
    // Its own program, as in an app that uses express-session and never imports 'clowder'.
    const base = JSON.parse(await readFile(join(app, 'tsconfig.json'), 'utf8')) as { files: string[] };
    await writeFile(join(app, 'tsconfig.store.json'), JSON.stringify({ ...base, files: ['check-store.mts'] }));
    await run(process.execPath, [tsc, '-p', 'tsconfig.store.json'], { cwd: app, env }).catch((err) => {
      assert.fail(`tsc on the express-session app failed:\n${err.stdout}${err.stderr}`);
    });
  }

  const help = await run('npx', ['--no-install', 'clowder', 'help'], { cwd: app, env });
  assert.match(help.stdout, /clowder start \[options\]/);
});

test("the README's install section: its Express app, run twice, shares a session between the two processes", async () => {
  assert.ok(app, 'the app was installed');
  const readme = await readFile(join(REPO, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Install into your app'));
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code?.includes("from 'clowder'"), 'the section has the app');
  if (code === undefined) return;
  const [c1, c2, h1, h2] = await freePorts(4);
  await writeFile(
    join(app, 'readme-app.mjs'),
    code.replaceAll('4001', String(c1)).replaceAll('4002', String(c2)).replaceAll('3001', String(h1)),
  );
  const children = [
    [h1, c1],
    [h2, c2],
  ].map(([http, cluster]) =>
    spawn(process.execPath, ['readme-app.mjs'], {
      cwd: app,
      env: { ...env, PORT: String(http), CLUSTER_PORT: String(cluster), CLOWDER_LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    }),
  );
  try {
    const up = (port: number) => () =>
      get(`http://127.0.0.1:${port}/`).then(
        (r) => r.status === 200,
        () => false,
      );
    await waitFor(up(h1!), 'the first copy serves', { timeoutMs: 20_000, intervalMs: 50 });
    await waitFor(up(h2!), 'the second copy serves', { timeoutMs: 20_000, intervalMs: 50 });
    const first = await get(`http://127.0.0.1:${h1}/`);
    assert.equal(first.body, 'views: 1\n');
    const second = await get(`http://127.0.0.1:${h2}/`, first.session);
    assert.equal(second.body, 'views: 2\n', 'the other process has the session');
  } finally {
    for (const child of children) child.kill('SIGKILL');
  }
});

test("the native module's install script runs from the installed package (npm rebuild)", async () => {
  assert.ok(app, 'the app was installed');
  // Either outcome is correct (a C compiler may be missing); the script must exit 0 and say which.
  const rebuilt = await run('npm', ['rebuild', 'clowder', '--foreground-scripts', '--loglevel=error'], {
    cwd: app,
    env,
    timeout: 200_000,
  });
  const out = `${rebuilt.stdout}${rebuilt.stderr}`;
  const built = existsSync(join(app, 'node_modules/clowder/build/Release/clowder_gcm.node'));
  if (built) assert.match(out, /native AES-GCM module built/);
  else assert.match(out, /native AES-GCM module was not built \(/);
});

/** A one-node app on the installed package: Express + createSessions, two requests, one bad option. */
function appSource(kind: 'esm' | 'cjs', subpaths: readonly string[]): string {
  const load =
    kind === 'esm'
      ? `import express from 'express';\nimport { createSessions } from 'clowder';\n${subpaths.map((s, i) => `import * as sub${i} from '${s}';`).join('\n')}\n`
      : `const express = require('express');\nconst { createSessions } = require('clowder');\n${subpaths.map((s) => `require('${s}');`).join('\n')}\n`;
  return `${load}
async function main() {
  const port = Number(process.env.CLUSTER_PORT);
  let configError;
  try {
    createSessions({ sessions: { cookieNam: 'sid' } });
  } catch (err) {
    configError = err.code;
  }
  const sessions = createSessions({
    channel: { name: '${kind}', receiver: { port }, membership: { type: 'static', members: ['127.0.0.1:' + port] } },
  });
  await sessions.start();
  const app = express();
  app.use(sessions.middleware());
  app.get('/', (req, res) => {
    req.session.n = (req.session.n ?? 0) + 1;
    res.send('n=' + req.session.n);
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const url = 'http://127.0.0.1:' + server.address().port + '/';
  const r1 = await fetch(url);
  const first = await r1.text();
  const cookie = r1.headers.get('set-cookie').split(';')[0];
  const second = await (await fetch(url, { headers: { cookie } })).text();
  console.log('RESULT ' + JSON.stringify({ first, second, configError }));
  server.close();
  await sessions.stop();
}
main().catch((err) => { console.error(err); process.exit(1); });
`;
}

const TYPES_ESM = `import { createSessions, ErrorCode, type SessionsOptions, type SessionCluster } from 'clowder';
const options: SessionsOptions = { sessions: { cookieName: 'sid', maxInactiveInterval: 600 } };
const sessions: SessionCluster = createSessions(options);
const started: Promise<void> = sessions.start();
const code: string = ErrorCode.CONFIG;
// @ts-expect-error an unknown option is a type error (the types are real, not any)
const wrong: SessionsOptions = { sessions: { cookieNam: 'sid' } };
export { code, started, wrong };
`;

/**
 * express-session with clowder's Store: req.session is express-session's (with the app's own
 * SessionData), untouched by the typing clowder's middleware brings with 'clowder'.
 */
const TYPES_STORE = `import express from 'express';
import session from 'express-session';
import { ClowderStore, createSessions } from 'clowder/express-session';
declare module 'express-session' {
  interface SessionData { user: string }
}
const sessions = createSessions({ sessions: { contextPath: '/' } });
const app = express();
app.use(session({ store: new ClowderStore(sessions), secret: 's', resave: false, saveUninitialized: false }));
app.get('/', (req, res) => {
  req.session.user = 'u';
  const id: string = req.sessionID;
  req.session.regenerate(() => res.send(id));
});
// @ts-expect-error express-session's SessionData says user is a string
app.get('/x', (req) => { req.session.user = 1; });
export { app };
`;

const TYPES_CJS = `import clowder = require('clowder');
const sessions: clowder.SessionCluster = clowder.createSessions({ sessions: { contextPath: '/' } });
// @ts-expect-error maxInactiveInterval is a number of seconds
clowder.createSessions({ sessions: { maxInactiveInterval: '30m' } });
export = sessions;
`;
