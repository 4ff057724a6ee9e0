/**
 * Collects every problem of a configuration so that one {@link ConfigError} reports them all at
 * once (one line each), across the components of a node config.
 */
import { ConfigError, type ConfigProblem } from '../core/errors.js';

/** How a component names its keys: the dotted path as the user wrote it, from the component's own key. */
export type KeyNamer = (key: string) => string;

/** A namer that puts `prefix.` before every key ('' = the key itself). */
export function prefixed(prefix: string): KeyNamer {
  return prefix === '' ? (key) => key : (key) => (key === '' ? prefix : `${prefix}.${key}`);
}

/** The problems of one configuration, in the order found; at most one per key (the first). */
export class Problems {
  readonly #list: ConfigProblem[] = [];

  /** Records a problem (ignored when `problem.key` already has one). */
  add(problem: ConfigProblem): void {
    if (!this.#list.some((p) => p.key === problem.key)) this.#list.push(problem);
  }

  /** Runs `check`; a ConfigError it throws is recorded (every problem of it) instead. */
  run<T>(check: () => T): T | undefined {
    try {
      return check();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const p of err.problems) this.add(p);
      return undefined;
    }
  }

  /**
   * True when none of `keys` (full dotted keys) has a problem, nor anything inside or around it:
   * a cross-field check runs only on valid inputs (else it would report a value already reported).
   */
  ok(...keys: string[]): boolean {
    return !this.#list.some((p) =>
      keys.some((k) => p.key === k || p.key.startsWith(`${k}.`) || k.startsWith(`${p.key}.`)),
    );
  }

  /** True when `key` itself (not a key inside it) has a problem, e.g. `cluster` is not an object. */
  has(key: string): boolean {
    return this.#list.some((p) => p.key === key);
  }

  /** The problems found so far. */
  get list(): readonly ConfigProblem[] {
    return this.#list;
  }

  /**
   * The checks of one component whose keys `name` names: `ok(...keys)` as {@link ok}, and
   * `fail(key, expected, received?)` recording a problem of that key.
   */
  scoped(name: KeyNamer): {
    ok(...keys: string[]): boolean;
    fail(key: string, expected: string, received?: unknown): void;
  } {
    return {
      ok: (...keys) => this.ok(...keys.map(name)),
      fail: (key, expected, received) =>
        this.add(received === undefined ? { key: name(key), expected } : { key: name(key), expected, received }),
    };
  }

  /** Runs a component's `collect` on fresh problems: what it built, or one ConfigError listing them all. */
  static resolve<T>(collect: (problems: Problems) => T | undefined): T {
    const problems = new Problems();
    const config = collect(problems);
    problems.throwIfAny();
    return config!;
  }

  /** Throws one ConfigError listing every problem (unknown keys first), if there is any. */
  throwIfAny(): void {
    if (this.#list.length > 0) throw ConfigError.of(this.#list);
  }
}
