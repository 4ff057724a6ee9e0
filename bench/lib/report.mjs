// One results schema and one report writer for the benchmark harnesses.
//
// JSON (bench/results/<benchmark>-<ISO date>.json):
//   { benchmark, startedAt, elapsedS, machine (machine.mjs), settings,
//     rows: [{ row: id, label?, …medians over the rounds…, rounds: [one result per round] }],
//     targets: [{ name, pass: true | false | null (information), detail, …}], …the harness's parts }
// Markdown (.md beside it): a title, the machine line, the harness's tables (mdTable), the targets.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { machineLine } from './machine.mjs';

const resultsDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'results');

/** Grouped thousands with `d` decimals ('-' for a non-number). */
export const fmt = (x, d = 0) =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '-';
/** Fixed `d` decimals ('-' for a non-number). */
export const fx = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');

/** console.log with the seconds since `t0` in front. */
export function createLog(t0 = performance.now()) {
  return (...a) => console.log(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s]`, ...a);
}

/** A markdown table; `align`: 'l', 'r' or 'c' per column. */
export function mdTable(head, rows, align) {
  return [
    `| ${head.join(' | ')} |`,
    `|${align.map((a) => (a === 'r' ? '---:' : a === 'c' ? ':---:' : ':---')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** The same as aligned plain text, for the terminal. */
export function textTable(head, rows, align) {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) =>
    cells.map((c, i) => (align[i] === 'r' ? String(c).padStart(w[i]) : String(c).padEnd(w[i]))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

/** PASS, MISS or info (pass null) for a target. */
export const verdict = (t) => (t.pass === null ? 'info' : t.pass ? 'PASS' : 'MISS');

/** The targets as a markdown list. */
export const targetList = (targets) => targets.map((t) => `- **${verdict(t)}** ${t.name}: ${t.detail}`).join('\n');

/** The report's first lines: title with the start time, and the machine. */
export const reportHead = (title, startedAt, info) => `## ${title}, ${startedAt}\n\n${machineLine(info)}\n`;

/** The JSON of a run in the one schema (fields in a fixed order). */
export function resultsJson({ benchmark, startedAt, t0, machine, settings, rows, targets, ...parts }) {
  return {
    benchmark,
    startedAt,
    elapsedS: +((performance.now() - t0) / 1000).toFixed(1),
    machine,
    settings,
    rows,
    targets,
    ...parts,
  };
}

/** Writes bench/results/<benchmark>-<startedAt>.json and .md; returns the path without extension. */
export function saveResults(json, md) {
  mkdirSync(resultsDir, { recursive: true });
  const stamp = json.startedAt.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const base = join(resultsDir, `${json.benchmark}-${stamp}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(`${base}.md`, md);
  console.log(`results: ${relative(process.cwd(), base)}.json, .md`);
  return base;
}
