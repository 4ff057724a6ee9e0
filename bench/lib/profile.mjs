// Summaries of V8 CPU profiles (.cpuprofile, from node --cpu-prof) for the harnesses' --profile.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function shortUrl(url) {
  if (!url) return '';
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  return path.startsWith('/') ? relative(root, path) : path;
}

const frameKey = ({ functionName, url, lineNumber }) => {
  const where = shortUrl(url);
  return `${functionName || '(anonymous)'}${where ? `  ${where}:${lineNumber + 1}` : ''}`;
};

/**
 * Top self-time functions over every .cpuprofile in dir (all of a row's nodes together). For the
 * top native functions (no script, e.g. writev), also the nearest library (dist/) or app frame
 * that called them, so a syscall's time can be put on the code that asked for it.
 */
export function summarizeProfiles(dir, top) {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const fns = new Map();
  const callers = new Map(); // native fn key -> Map(caller key -> µs)
  let total = 0;
  const samplesOf = [];
  for (const f of files) {
    const prof = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    const parent = new Map();
    for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const { samples, timeDeltas } = prof;
    for (let i = 0; i < samples.length; i++) {
      const dt = timeDeltas[i + 1] ?? 0;
      const cf = byId.get(samples[i]).callFrame;
      if (cf.functionName === '(idle)' || cf.functionName === '(program)') continue;
      const key = frameKey(cf);
      fns.set(key, (fns.get(key) ?? 0) + dt);
      total += dt;
      if (!cf.url) samplesOf.push({ key, id: samples[i], dt, byId, parent });
    }
  }
  const ranked = [...fns].sort((a, b) => b[1] - a[1]).slice(0, top);
  const natives = new Set(ranked.slice(0, 5).map(([k]) => k));
  for (const s of samplesOf) {
    if (!natives.has(s.key)) continue;
    let id = s.parent.get(s.id);
    let caller = '(no library frame)';
    while (id !== undefined) {
      const cf = s.byId.get(id).callFrame;
      if (cf.url && (cf.url.includes('/dist/') || cf.url.includes('/examples/') || cf.url.includes('/servers/'))) {
        caller = frameKey(cf);
        break;
      }
      id = s.parent.get(id);
    }
    if (!callers.has(s.key)) callers.set(s.key, new Map());
    const m = callers.get(s.key);
    m.set(caller, (m.get(caller) ?? 0) + s.dt);
  }
  return {
    files: files.length,
    sampledS: +(total / 1e6).toFixed(3),
    top: ranked.map(([fn, us]) => ({
      fn,
      ms: +(us / 1000).toFixed(1),
      pct: +((100 * us) / total).toFixed(1),
      ...(callers.has(fn)
        ? {
            calledFrom: [...callers.get(fn)]
              .sort((a, b) => b[1] - a[1])
              .slice(0, 4)
              .map(([c, cus]) => ({ caller: c, pct: +((100 * cus) / total).toFixed(1) })),
          }
        : {}),
    })),
  };
}

/** Prints a summary's lines through `print`. */
export function printProfile(p, print) {
  for (const f of p.top) {
    print(`    ${String(f.pct).padStart(5)} %  ${String(f.ms).padStart(9)} ms  ${f.fn}`);
    for (const c of f.calledFrom ?? []) print(`                       ${String(c.pct).padStart(5)} % via ${c.caller}`);
  }
}
