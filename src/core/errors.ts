/**
 * The one error catalogue of clowder. Every error thrown by the library is a {@link ClusterError}
 * with a stable `code` (`ERR_CLOWDER_*`) that callers can switch on; messages say what to do.
 */

/** Stable error codes. Append only: a code, once shipped, keeps its meaning. */
export const ErrorCode = {
  CONFIG: 'ERR_CLOWDER_CONFIG',
  CODEC_ENCODE: 'ERR_CLOWDER_CODEC_ENCODE',
  CODEC_DECODE: 'ERR_CLOWDER_CODEC_DECODE',
  FRAME: 'ERR_CLOWDER_FRAME',
  QUEUE_FULL: 'ERR_CLOWDER_QUEUE_FULL',
  SEND_FAILED: 'ERR_CLOWDER_SEND_FAILED',
  SEND_TIMEOUT: 'ERR_CLOWDER_SEND_TIMEOUT',
  NOT_STARTED: 'ERR_CLOWDER_NOT_STARTED',
  STOPPED: 'ERR_CLOWDER_STOPPED',
  UNKNOWN_MEMBER: 'ERR_CLOWDER_UNKNOWN_MEMBER',
  AUTH: 'ERR_CLOWDER_AUTH',
  INSECURE: 'ERR_CLOWDER_INSECURE',
  BIND: 'ERR_CLOWDER_BIND',
  REMOTE_PROCESSING: 'ERR_CLOWDER_REMOTE_PROCESSING',
  MESSAGE_TOO_LARGE: 'ERR_CLOWDER_MESSAGE_TOO_LARGE',
  TOO_MANY_SESSIONS: 'ERR_CLOWDER_TOO_MANY_SESSIONS',
  SESSION_READ_ONLY: 'ERR_CLOWDER_SESSION_READ_ONLY',
  MESSAGE_EXPIRED: 'ERR_CLOWDER_MESSAGE_EXPIRED',
  /** The cluster key file is missing, unreadable, or readable/writable by others (the message says how to fix it). */
  KEY_FILE: 'ERR_CLOWDER_KEY_FILE',
  /** An application module was found but threw while it was loaded (its own error is the cause). */
  APP_LOAD: 'ERR_CLOWDER_APP_LOAD',
  /** A session id refused by the express-session store: malformed, or presented by a client and not held. */
  SESSION_ID: 'ERR_CLOWDER_SESSION_ID',
  /** A member speaks no protocol version this node speaks (an upgrade skipped a version): it is refused. */
  PROTOCOL_VERSION: 'ERR_CLOWDER_PROTOCOL_VERSION',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const kClusterError = Symbol.for('clowder.ClusterError');

/** Base class of every error clowder throws. */
export class ClusterError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    (this as unknown as Record<symbol, boolean>)[kClusterError] = true;
  }

  /** `instanceof` that also works across two installed copies of clowder. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class instanceof was called on
    if (this !== ClusterError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kClusterError] === true;
  }
}

/**
 * One problem of a configuration: the dotted key as the user wrote it, the accepted form, and the
 * value given (absent when it is not shown, e.g. a secret). For an unknown key, `hint` says what to
 * do instead (its nearest known name, where it belongs, or why an express-session option does not
 * apply) and `expected` is "a known option (…)".
 */
export interface ConfigProblem {
  readonly key: string;
  readonly expected: string;
  readonly received?: unknown;
  readonly hint?: string;
}

/** One line of a config error: `invalid config: "<key>" must be <expected> (got <value>)` or `… is <hint>`. */
function lineOf(p: ConfigProblem): string {
  if (p.hint !== undefined) return `invalid config: "${p.key}" is ${p.hint}`;
  const got = p.received === undefined ? '' : ` (got ${describe(p.received)})`;
  return `invalid config: "${p.key}" must be ${p.expected}${got}`;
}

/**
 * A configuration is missing or malformed. Every problem found is in `problems` (all of them at
 * once, one message line each); `key` (the dotted path) and `expected` (the accepted form) are
 * those of the first.
 */
export class ConfigError extends ClusterError {
  readonly key: string;
  readonly expected: string;
  /** Every problem of the configuration, in the order they are reported (unknown keys first); never empty. */
  readonly problems: readonly ConfigProblem[];
  /** One problem: `key` must be `expected` (`received`, when given, is shown in the message). */
  constructor(key: string, expected: string, received?: unknown);
  /** Several problems (at least one), reported together. */
  constructor(problems: readonly ConfigProblem[]);
  constructor(keyOrProblems: string | readonly ConfigProblem[], expected?: string, received?: unknown) {
    const problems: readonly ConfigProblem[] =
      typeof keyOrProblems === 'string'
        ? [
            received === undefined
              ? { key: keyOrProblems, expected: expected! }
              : { key: keyOrProblems, expected: expected!, received },
          ]
        : keyOrProblems;
    if (problems.length === 0) throw new TypeError('ConfigError needs at least one problem');
    super(ErrorCode.CONFIG, problems.map(lineOf).join('\n'));
    this.key = problems[0]!.key;
    this.expected = problems[0]!.expected;
    this.problems = Object.freeze([...problems]);
  }

  /**
   * The error for `problems` (at least one): an {@link UnknownOptionsError} when some key is not an
   * option (those come first), else a ConfigError.
   */
  static of(problems: readonly ConfigProblem[]): ConfigError {
    const unknown = problems.filter((p) => p.hint !== undefined);
    if (unknown.length === 0) return new ConfigError(problems);
    return new UnknownOptionsError(
      unknown.map((p) => ({ key: p.key, hint: p.hint! })),
      problems.filter((p) => p.hint === undefined),
    );
  }
}

/** One unknown config key: its dotted path and what to do instead. */
export interface UnknownOption {
  readonly key: string;
  readonly hint: string;
}

/**
 * Config keys that are not options, all of them at once, each with a hint (the nearest known name,
 * where a misplaced key belongs, or why an express-session option does not apply). `key` is the
 * first of them. `problems` lists them first, then the other problems of the same configuration
 * (`others`), so that one error reports everything.
 */
export class UnknownOptionsError extends ConfigError {
  /** The `expected` of an unknown key's problem. */
  static readonly EXPECTED = 'a known option (unknown keys are refused; check the spelling)';
  readonly unknown: readonly UnknownOption[];
  constructor(unknown: readonly UnknownOption[], others: readonly ConfigProblem[] = []) {
    // One line per key, each readable alone: `invalid config: "sessions.secret" is not needed: …`.
    super([...unknown.map((u) => ({ key: u.key, expected: UnknownOptionsError.EXPECTED, hint: u.hint })), ...others]);
    this.unknown = unknown;
  }
}

/** A value cannot be encoded (encode) or bytes from the network are not a valid encoding (decode). */
export class CodecError extends ClusterError {
  /** Path of the offending value inside the encoded value, e.g. `cart.items[2]`; '' for the root. */
  readonly path: string;
  constructor(code: typeof ErrorCode.CODEC_ENCODE | typeof ErrorCode.CODEC_DECODE, message: string, path = '') {
    super(code, message);
    this.path = path;
  }
}

/** A frame on a cluster connection is malformed or exceeds a limit. */
export class FrameError extends ClusterError {
  constructor(message: string) {
    super(ErrorCode.FRAME, message);
  }
}

/**
 * A member (in a verified hello, its answer, or a heartbeat) speaks protocol versions
 * [peerMin, peerCurrent] and this node [localMin, localCurrent], with none in common: it is refused
 * and counted (`transport.refusedProtocolVersion`). See docs/wire-format.md, "Protocol versions".
 */
export class ProtocolVersionError extends ClusterError {
  /** Set when a verified HELLO was refused: what the receiver needs to answer it (so both sides learn why). */
  hello: { readonly nonce: Buffer; readonly keyIndex: number } | undefined;
  constructor(
    readonly peerId: string,
    readonly peerMin: number,
    readonly peerCurrent: number,
    readonly localMin: number,
    readonly localCurrent: number,
  ) {
    super(
      ErrorCode.PROTOCOL_VERSION,
      `member ${peerId} speaks clowder protocol versions ${peerMin}-${peerCurrent}, this node ${localMin}-${localCurrent}: ` +
        'no version in common, so it is refused. Upgrade one version at a time: every node of a rolling upgrade must share a version with the others (docs/wire-format.md)',
    );
  }
}

/** One member that a send could not reach, and why (Tribes' FaultyMember). */
export interface FaultyMember {
  /** Member id (hex). */
  readonly id: string;
  /** Member name (jvmRoute). */
  readonly name: string;
  readonly error: ClusterError;
}

/** A send to several members failed for some of them; `faulty` names each and the reason. */
export class SendError extends ClusterError {
  readonly faulty: readonly FaultyMember[];
  constructor(faulty: readonly FaultyMember[]) {
    const names = faulty.map((f) => `${f.name}(${f.id.slice(0, 8)}): ${f.error.message}`).join('; ');
    super(ErrorCode.SEND_FAILED, `send failed for ${faulty.length} member(s): ${names}`);
    this.faulty = faulty;
  }
}

/** Short, bounded description of a value for error messages. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (value === null || typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return `an object`;
}
