// Summary of a Stryker JSON report (mutation-testing-report-schema): the score per file and every
// mutant that was not killed, at its TypeScript line (through the tsc source map of the JS file).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Decodes a source map's `mappings` into, per generated line, [genColumn, source, line, column][]. */
function decodeMappings(mappings) {
  const lines = [];
  let source = 0;
  let line = 0;
  let column = 0;
  for (const text of mappings.split(';')) {
    const segments = [];
    let genColumn = 0;
    for (const seg of text.split(',')) {
      if (seg === '') continue;
      const values = [];
      let value = 0;
      let shift = 0;
      for (const ch of seg) {
        const digit = B64.indexOf(ch);
        value += (digit & 31) << shift;
        if (digit & 32) shift += 5;
        else {
          values.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      genColumn += values[0];
      if (values.length >= 4) {
        source += values[1];
        line += values[2];
        column += values[3];
        segments.push([genColumn, source, line, column]);
      }
    }
    lines.push(segments);
  }
  return lines;
}

/** A function (JS line 1-based, column 1-based) → "file.ts:line", or the JS position without a map. */
function mapper(jsFile) {
  const mapFile = `${jsFile}.map`;
  if (!existsSync(mapFile)) return (l, c) => `${jsFile}:${l}:${c}`;
  const map = JSON.parse(readFileSync(mapFile, 'utf8'));
  const lines = decodeMappings(map.mappings);
  return (l, c) => {
    const segs = lines[l - 1] ?? [];
    let best = segs[0];
    for (const s of segs) if (s[0] <= c - 1) best = s;
    if (best === undefined) return `${jsFile}:${l}:${c}`;
    const src = path.relative('.', path.resolve(path.dirname(mapFile), map.sourceRoot ?? '', map.sources[best[1]]));
    return `${src}:${best[2] + 1}`;
  };
}

const DETECTED = new Set(['Killed', 'Timeout']);
const UNDETECTED = new Set(['Survived', 'NoCoverage']);

export function survivorsReport(report, buildDir, elapsedMs) {
  const out = [];
  let detected = 0;
  let undetected = 0;
  for (const [file, f] of Object.entries(report.files)) {
    const where = mapper(file);
    let d = 0;
    let u = 0;
    const left = [];
    for (const m of f.mutants) {
      if (DETECTED.has(m.status)) d++;
      else if (UNDETECTED.has(m.status)) {
        u++;
        const s = m.location.start;
        const replacement = (m.replacement ?? '').replace(/\s+/g, ' ').slice(0, 80);
        left.push([
          where(s.line, s.column),
          `${m.status} ${m.mutatorName}: ${replacement} (js ${s.line}:${s.column}, #${m.id})`,
        ]);
      }
    }
    detected += d;
    undetected += u;
    const score = d + u === 0 ? 'n/a' : `${((100 * d) / (d + u)).toFixed(1)}%`;
    out.push(`${path.relative(buildDir, file)}: ${score} (${d} killed, ${u} not: ${f.mutants.length} mutants)`);
    left.sort((a, b) => a[0].localeCompare(b[0], 'en', { numeric: true }));
    for (const [at, what] of left) out.push(`  ${at}  ${what}`);
  }
  const total = detected + undetected === 0 ? 'n/a' : `${((100 * detected) / (detected + undetected)).toFixed(1)}%`;
  out.unshift(`mutation score ${total} (${detected}/${detected + undetected}) in ${(elapsedMs / 1000).toFixed(0)} s`);
  return `${out.join('\n')}\n`;
}
