/**
 * Property-based fuzzing settings shared by the fuzz tests: a short run in `npm test`, a long one
 * with CLOWDER_FUZZ_RUNS (e.g. `CLOWDER_FUZZ_RUNS=100000 npm test`). A failure prints fast-check's
 * seed and path; CLOWDER_FUZZ_SEED replays it.
 */
import type { Parameters as FcParameters } from 'fast-check';

const runs = Number(process.env.CLOWDER_FUZZ_RUNS ?? '');
const seed = Number(process.env.CLOWDER_FUZZ_SEED ?? '');

/** fast-check parameters: `short` runs by default, CLOWDER_FUZZ_RUNS when set. */
export function fuzzRuns<T>(short = 200): FcParameters<T> {
  const params: FcParameters<T> = { numRuns: Number.isInteger(runs) && runs > 0 ? runs : short };
  if (Number.isInteger(seed) && process.env.CLOWDER_FUZZ_SEED !== undefined) params.seed = seed;
  return params;
}
