#!/usr/bin/env node
// Mutation testing of the pure modules (StrykerJS with its tap runner): an occasional job, not CI.
//
//   npm run mutation -- <target>...     (no target: list them; `all`: every target in turn)
//
// Stryker mutates the compiled JavaScript in .test-build/src (no TypeScript build per mutant) and
// runs only the socket-free unit test files of that target, each under plain `node <file>` (the
// node:test TAP output is what the tap runner reads). Surviving mutants are mapped back to their
// TypeScript lines through the source maps tsc wrote. Reports: reports/mutation/<target>/
// (git-ignored): index.html (Stryker's report, on the JS), mutation.json, survivors.txt (TS lines).
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Stryker } from '@stryker-mutator/core';
import { survivorsReport } from './survivors.mjs';

/** What to mutate (compiled files) and the unit test files that must kill the mutants. */
const TARGETS = {
  merge: {
    mutate: ['src/session/merge.js'],
    tests: ['test/unit/session/merge.test.js', 'test/unit/session/merge-writes.test.js'],
  },
  messages: {
    mutate: ['src/session/message-readers.js', 'src/session/messages.js', 'src/session/message-builders.js'],
    tests: ['test/unit/session/message-readers.test.js', 'test/unit/session/message-builders.test.js'],
  },
  // The shared session core, run between managers on the in-memory channel twin (no sockets).
  core: {
    mutate: [
      'src/session/session-store.js',
      'src/session/outbound.js',
      'src/session/inbound.js',
      'src/session/copies.js',
      'src/session/changes.js',
    ],
    tests: ['test/unit/session/twin-replication.test.js', 'test/unit/session/twin-ownership.test.js'],
  },
  ownership: {
    mutate: ['src/session/ownership.js'],
    tests: ['test/unit/session/ownership.test.js'],
  },
  wire: {
    mutate: ['src/wire/frame.js', 'src/wire/heartbeat.js'],
    tests: [
      'test/unit/wire/frame.test.js',
      'test/unit/wire/frame-assembly.test.js',
      'test/unit/wire/heartbeat-bounds.test.js',
      'test/unit/wire/heartbeat-fuzz.test.js',
    ],
  },
  // The codec's encoder and diagnosing walker are most of its mutants (a run of all of it takes
  // about 4 times as long): by default only the limits and the decoder, the part that reads hostile
  // bytes. MUTATION_MUTATE=src/codec/value-codec.js,src/codec/encode-check.js,src/codec/encodable.js
  // adds the rest.
  codec: {
    mutate: ['src/codec/format.js', 'src/codec/decoder.js'],
    tests: ['test/unit/codec/value-codec.test.js', 'test/unit/codec/decode-bounds.test.js'],
  },
};

const BUILD = '.test-build';

function usage() {
  console.log('usage: npm run mutation -- <target>... | all');
  console.log(`targets: ${Object.keys(TARGETS).join(', ')}`);
  console.log(
    'env: MUTATION_CONCURRENCY (default 1), MUTATION_MUTATE (override, e.g. src/codec/value-codec.js:600-800)',
  );
}

/**
 * `file` as Stryker mutate patterns: the whole file, or with `sections` ([from, to] comment lines;
 * to null = the end) its line ranges, found in the compiled file so that they follow the code.
 */
function ranges(file, sections) {
  if (sections === undefined) return [file];
  const lines = readFileSync(file, 'utf8').split('\n');
  const at = (marker) => {
    const i = lines.findIndex((l) => l.startsWith(marker));
    if (i < 0) throw new Error(`${file}: no line starting with ${JSON.stringify(marker)}`);
    return i + 1;
  };
  return sections.map(([from, to]) => `${file}:${at(from)}-${to === null ? lines.length : at(to) - 1}`);
}

async function run(name) {
  const t = TARGETS[name];
  const dir = path.join('reports', 'mutation', name);
  const mutate = process.env.MUTATION_MUTATE
    ? process.env.MUTATION_MUTATE.split(',').map((m) => path.posix.join(BUILD, m))
    : t.mutate.flatMap((m) => ranges(path.posix.join(BUILD, m), t.sections));
  const started = Date.now();
  const stryker = new Stryker({
    testRunner: 'tap',
    plugins: ['@stryker-mutator/tap-runner'],
    tap: { testFiles: t.tests.map((f) => path.posix.join(BUILD, f)), nodeArgs: [], forceBail: true },
    mutate,
    // The sandbox holds the compiled tree only (node_modules is linked): the sources, dist and
    // everything else stay out of the copy.
    ignorePatterns: ['/*', `!/${BUILD}`, '!/package.json'],
    coverageAnalysis: 'perTest',
    concurrency: Number(process.env.MUTATION_CONCURRENCY ?? 1),
    timeoutMS: 10_000,
    reporters: ['html', 'json', 'clear-text', 'progress'],
    htmlReporter: { fileName: path.join(dir, 'index.html') },
    jsonReporter: { fileName: path.join(dir, 'mutation.json') },
    clearTextReporter: { allowColor: false, logTests: false, reportMutants: false },
    tempDirName: '.stryker-tmp',
    incremental: false,
    thresholds: { high: 90, low: 75, break: null },
  });
  await stryker.runMutationTest();
  const report = JSON.parse(readFileSync(path.join(dir, 'mutation.json'), 'utf8'));
  const text = survivorsReport(report, BUILD, Date.now() - started);
  writeFileSync(path.join(dir, 'survivors.txt'), text);
  console.log(text);
}

const args = process.argv.slice(2);
const names = args.includes('all') ? Object.keys(TARGETS) : args;
if (names.length === 0 || names.some((n) => !(n in TARGETS))) {
  usage();
  process.exit(names.length === 0 ? 0 : 2);
}
for (const name of names) await run(name);
