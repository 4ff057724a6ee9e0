// Builds clowder's optional native module (native/gcm.c: AES-256-GCM for sealed cluster records)
// with node-gyp. Run by `npm install` / `npm ci` (the package's install script).
//
// Optional by design: when it cannot build (no C compiler, make or python3; no Node headers), this
// prints why and exits 0, and clowder seals records with node:crypto instead — same wire format,
// about a third of the throughput with a cluster key. Nothing is downloaded: node-gyp is pointed at
// the headers of the running Node when they are installed beside it.
//   CLOWDER_SKIP_NATIVE=1   do not build (clowder then uses node:crypto)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

if (process.env.CLOWDER_SKIP_NATIVE === '1') {
  console.log('clowder: CLOWDER_SKIP_NATIVE=1: native AES-GCM module not built (node:crypto will be used)');
  process.exit(0);
}

// npm runs install scripts with npm_config_node_gyp pointing at its own node-gyp.
const candidates = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter((p) => p !== undefined && existsSync(p));
const nodeGyp = candidates[0];

const args = ['rebuild', '--release'];
// Headers of this very Node (a system or official install has them beside the binary); without
// them node-gyp would try to download them.
const prefix = resolve(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}

function giveUp(why) {
  console.warn(
    `clowder: the native AES-GCM module was not built (${why}).\n` +
      '  clowder works without it: cluster records are sealed with node:crypto (same wire format),\n' +
      '  at about a third of the throughput when a cluster key is set. To build it, install a C\n' +
      '  compiler, make and python3, then run `npm rebuild clowder` (or `npm run build:native`).',
  );
  process.exit(0);
}

if (nodeGyp === undefined) giveUp('node-gyp not found');
const run = spawnSync(process.execPath, [nodeGyp, ...args], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'pipe'],
  timeout: 180_000,
});
if (run.error) giveUp(run.error.message);
if (run.status !== 0) {
  // The compiler's or make's own complaint says more than node-gyp's closing lines.
  const lines = `${run.stdout}\n${run.stderr}`.trim().split('\n');
  const generic = /^gyp (info|ERR! (System|command|cwd|node -v|node-gyp -v|not ok|stack))/;
  const cause = lines.filter((l) => !generic.test(l) && /error|not found|no such|cannot|could not/i.test(l));
  const shown = (cause.length > 0 ? cause : lines).slice(-6).join('\n    ');
  giveUp(`node-gyp exited with ${run.status ?? run.signal}:\n    ${shown}`);
}
console.log('clowder: native AES-GCM module built (build/Release/clowder_gcm.node)');
