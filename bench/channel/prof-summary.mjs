// Summarizes V8 .cpuprofile files (node --cpu-prof): top functions by self time, and self time per file.
//
//   node bench/channel/prof-summary.mjs PROFILE.cpuprofile [more...] [--top=25]
//
// Typical use with the channel benchmark (profiles are large: delete them afterwards):
//   node --cpu-prof --cpu-prof-dir=bench/channel/.prof bench/channel/run.mjs --quick --no-save --profile --rows=channel/async/1KiB
//   node bench/channel/prof-summary.mjs bench/channel/.prof/*.cpuprofile && rm -r bench/channel/.prof
// (--profile makes the receiver process write its own profile into bench/channel/.prof too.)
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const files = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const top = Number(process.argv.find((a) => a.startsWith('--top='))?.slice(6) ?? 25);
if (files.length === 0) {
  console.error('usage: node bench/channel/prof-summary.mjs FILE.cpuprofile [...] [--top=N]');
  process.exit(2);
}

function shortUrl(url) {
  if (!url) return '';
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  return path.startsWith('/') ? relative(process.cwd(), path) : path;
}

for (const file of files) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map(); // node id -> µs
  const { samples, timeDeltas } = prof;
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i + 1] ?? 0; // the time until the next sample belongs to this one
    self.set(samples[i], (self.get(samples[i]) ?? 0) + dt);
  }
  let total = 0;
  const fns = new Map();
  const perFile = new Map();
  for (const [id, us] of self) {
    total += us;
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    const where = shortUrl(url);
    const key = `${functionName || '(anonymous)'}  ${where}${where ? `:${lineNumber + 1}` : ''}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    const f = where || functionName;
    perFile.set(f, (perFile.get(f) ?? 0) + us);
  }
  const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
  console.log(`\n== ${file}: ${(total / 1e6).toFixed(2)} s sampled`);
  console.log('-- self time by function');
  for (const [k, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`);
  console.log('-- self time by file');
  for (const [k, us] of [...perFile].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${pct(us)}  ${k}`);
}
