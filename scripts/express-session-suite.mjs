#!/usr/bin/env node
/**
 * Runs express-session's own test suite (v1.19.0) with its MemoryStore swapped for clowder's
 * express-session store (`clowder/express-session`), over an in-process clowder cluster, and
 * prints the tally. Not part of `npm test`: it needs express-session's source and its test
 * dependencies from the npm registry.
 *
 *   npm run build
 *   node scripts/express-session-suite.mjs <express-session-1.19.0 checkout> [--nodes 1|2] [--dir <work dir>]
 *
 * (the checkout defaults to $EXPRESS_SESSION_SRC; e.g. `git clone -b v1.19.0
 * https://github.com/expressjs/session`). It copies the checkout to a temporary directory outside
 * this repository, installs the suite's test dependencies there (mocha, supertest, express 4,
 * cookie-parser, after; not eslint/nyc), installs this repository's dist/ there as `clowder`,
 * replaces session/memory.js with a shim whose `new MemoryStore()` returns a ClowderStore on a
 * fresh session context of the cluster (each of the suite's stores starts empty, as MemoryStore
 * does), runs mocha with the suite's own options and prints passes and failures by title.
 * With `--nodes 2` every context also runs on a second node, which receives every change.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const nodes = Number(flag('--nodes', '1'));
const workDir = flag('--dir', undefined);
const source = resolve(args[0] ?? process.env.EXPRESS_SESSION_SRC ?? '');

function fail(message) {
  console.error(`express-session-suite: ${message}`);
  process.exit(2);
}

if (!existsSync(join(source, 'package.json'))) fail('give the path of an express-session 1.19.0 checkout');
const pkg = JSON.parse(readFileSync(join(source, 'package.json'), 'utf8'));
if (pkg.name !== 'express-session' || pkg.version !== '1.19.0')
  fail(`expected express-session 1.19.0 at ${source}, found ${pkg.name}@${pkg.version}`);
if (!existsSync(join(repo, 'dist/http/express-session-store.js'))) fail('build clowder first: npm run build');
if (nodes !== 1 && nodes !== 2) fail('--nodes is 1 or 2');

const dir = workDir ? resolve(workDir) : mkdtempSync(join(tmpdir(), 'clowder-es-suite-'));
if (dir.startsWith(`${repo}/`)) fail('the work directory must be outside this repository');
console.log(`express-session-suite: working in ${dir}`);

// 1. The suite, and its test dependencies (the linters and coverage left out).
rmSync(join(dir, 'session'), { recursive: true, force: true });
cpSync(source, dir, { recursive: true, filter: (p) => !p.includes('/.git') && !p.includes('/node_modules') });
const suitePkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
for (const name of Object.keys(suitePkg.devDependencies))
  if (!['mocha', 'supertest', 'express', 'cookie-parser', 'after'].includes(name))
    delete suitePkg.devDependencies[name];
writeFileSync(join(dir, 'package.json'), `${JSON.stringify(suitePkg, null, 2)}\n`);
if (!existsSync(join(dir, 'node_modules/mocha'))) {
  console.log('express-session-suite: npm install (mocha, supertest, express 4, cookie-parser, after)…');
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock'], { cwd: dir, stdio: 'inherit' });
}

// 2. clowder as a package of the suite; `express-session` there is the suite's own copy.
const clowderDir = join(dir, 'node_modules/clowder');
rmSync(clowderDir, { recursive: true, force: true });
mkdirSync(join(clowderDir, 'node_modules'), { recursive: true });
cpSync(join(repo, 'dist'), join(clowderDir, 'dist'), { recursive: true });
writeFileSync(
  join(clowderDir, 'package.json'),
  `${JSON.stringify({ name: 'clowder', version: '0.0.0-suite', type: 'module', main: './dist/index.js' }, null, 2)}\n`,
);
for (const dep of Object.keys(JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).dependencies))
  symlinkSync(join(repo, 'node_modules', dep), join(clowderDir, 'node_modules', dep), 'dir');
rmSync(join(dir, 'node_modules/express-session'), { recursive: true, force: true });
symlinkSync(dir, join(dir, 'node_modules/express-session'), 'dir');

// 3. The swap: MemoryStore is a clowder store on a fresh context of the cluster.
writeFileSync(
  join(dir, 'session/memory.js'),
  `'use strict'
// clowder: express-session's MemoryStore replaced by clowder's store (scripts/express-session-suite.mjs).
module.exports = function MemoryStore () {
  var suite = global[Symbol.for('clowder.es-suite')]
  if (!suite) throw new Error('clowder suite hooks not loaded (mocha --require test/support/clowder-hooks.js)')
  return suite.newStore()
}
`,
);
writeFileSync(
  join(dir, 'test/support/clowder-hooks.js'),
  `'use strict'
// clowder: an in-process cluster of ${nodes} node(s); each new store gets its own session context on it.
var NODES = ${nodes}
var stores = []
var managers = []
var channels = []
exports.mochaHooks = {
  beforeAll: async function () {
    this.timeout(30000)
    var clowder = await import('clowder')
    var storeModule = await import('clowder/dist/http/express-session-store.js')
    var port = 40000 + Math.floor(Math.random() * 20000)
    var domain = 'es' + Math.random().toString(36).slice(2, 10)
    var hubs = []
    for (var i = 0; i < NODES; i++) {
      var channel = clowder.createChannel({
        name: 'suite-' + i, domain: domain, receiver: { port: 0 },
        membership: { type: 'multicast', port: port, frequencyMs: 100, dropTimeMs: 1000 }
      }, { logger: clowder.silentLogger })
      channels.push(channel)
      hubs.push(new clowder.ReplicationHub(channel, clowder.silentLogger))
    }
    await Promise.all(channels.map(function (c) { return c.start() }))
    var deadline = Date.now() + 10000
    while (channels.some(function (c) { return c.members().length !== NODES - 1 })) {
      if (Date.now() > deadline) throw new Error('the suite cluster did not form')
      await new Promise(function (r) { setTimeout(r, 20) })
    }
    var contexts = 0
    global[Symbol.for('clowder.es-suite')] = {
      newStore: function () {
        var name = 'suite-' + (++contexts)
        var first
        for (var i = 0; i < NODES; i++) {
          var config = clowder.resolveSessionConfig({ name: name })
          var manager = new clowder.DeltaManager(config, hubs[i], clowder.silentLogger)
          managers.push(manager)
          manager.start()
          if (i === 0) first = manager
        }
        var store = new storeModule.ClowderStore(first)
        stores.push(store)
        return store
      }
    }
  },
  afterAll: async function () {
    stores.forEach(function (s) { s.close() })
    await Promise.all(managers.map(function (m) { return m.stop() }))
    await Promise.all(channels.map(function (c) { return c.stop() }))
  }
}
`,
);

// 4. Certificates for the suite's HTTPS tests (its own gencert.sh), then mocha with its options.
if (!existsSync(join(dir, 'test/fixtures/server.key'))) {
  const r = spawnSync('sh', ['./test/support/gencert.sh'], { cwd: dir, stdio: 'ignore' });
  if (r.status !== 0) console.log('express-session-suite: openssl failed: the HTTPS tests will fail');
}
const reportFile = join(dir, 'mocha-report.json');
const run = spawnSync(
  join(dir, 'node_modules/.bin/mocha'),
  [
    '--require',
    'test/support/env',
    '--require',
    'test/support/clowder-hooks.js',
    '--check-leaks',
    '--global',
    '__zod_globalConfig,__zod_globalRegistry', // zod (clowder's config validation) defines these on import
    '--exit',
    '--reporter',
    'json',
    '--reporter-option',
    `output=${reportFile}`,
    'test/',
  ],
  { cwd: dir, stdio: 'inherit' },
);
if (!existsSync(reportFile)) fail(`mocha produced no report (exit ${run.status})`);
const report = JSON.parse(readFileSync(reportFile, 'utf8'));
const { stats, failures } = report;
// A test whose error also reaches mocha as an uncaught error is listed twice: count titles.
const failed = [...new Map(failures.map((f) => [f.fullTitle, f])).values()];
console.log(
  `\nexpress-session 1.19.0 suite with clowder's store (${nodes} node${nodes > 1 ? 's' : ''}): ` +
    `${stats.passes} of ${stats.tests} tests pass, ${failed.length} fail, ${stats.pending} pending`,
);
for (const f of failed) console.log(`  FAIL ${f.fullTitle}\n       ${String(f.err.message ?? '').split('\n')[0]}`);
process.exit(failed.length === 0 ? 0 : 1);
