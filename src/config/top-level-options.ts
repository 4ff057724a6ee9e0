/**
 * The top-level objects users pass — `createSessions({ channel, sessions })` and a node config —
 * refuse unknown keys like every config object, and say where a misplaced key belongs
 * (`createSessions({ cookieName })` → "did you mean sessions.cookieName?").
 */
import { z } from 'zod';
import { UnknownOptionsError } from '../core/errors.js';
import { collectChannelConfig, resolveChannelConfig } from './channel-config.js';
import { CREATE_SESSIONS_OPTIONS, type ForeignTable } from './foreign-options.js';
import { collectPlacementConfig } from './placement-config.js';
import { Problems, prefixed } from './problems.js';
import { collectConfig, type ParseOptions } from './schema-helpers.js';
import { collectSessionConfig, resolveSessionConfig } from './session-config.js';

/** True when `resolve` knows `key` (tried on the error path only: it builds a throwaway config). */
function knows(resolve: (input: Record<string, unknown>) => unknown, key: string): boolean {
  try {
    resolve({ [key]: undefined });
    return true;
  } catch (err) {
    return !(err instanceof UnknownOptionsError);
  }
}

/** Hints for a node or createSessions top level: express-session options explained, misplaced keys placed. */
export function topLevelHints(channelKey: 'channel' | 'cluster', foreign: ForeignTable): ParseOptions {
  return {
    foreign,
    elsewhere: (key) => {
      if (knows((i) => resolveSessionConfig(i), key)) return `sessions.${key}`;
      if (knows((i) => resolveChannelConfig(i), key)) return `${channelKey}.${key}`;
      return undefined;
    },
  };
}

const createSessionsSchema = z.strictObject(
  { channel: z.unknown().optional(), sessions: z.unknown().optional(), placement: z.unknown().optional() },
  { error: 'an object { channel, sessions, placement }' },
);

/**
 * Validates createSessions' options as a whole: unknown top-level keys (each with a hint), then the
 * channel, sessions and placement blocks, every problem at once, each named as written
 * (`channel.detector.mode`, `sessions.backups`). @throws ConfigError (UnknownOptionsError when a
 * key is not an option) listing them all.
 */
export function checkCreateSessionsOptions(options: unknown): void {
  const problems = new Problems();
  const hints = topLevelHints('channel', CREATE_SESSIONS_OPTIONS);
  collectConfig(createSessionsSchema, options, prefixed(''), problems, hints);
  if (problems.has('')) problems.throwIfAny();
  const o = (options ?? {}) as { channel?: unknown; sessions?: unknown; placement?: unknown };
  collectChannelConfig(o.channel ?? {}, prefixed('channel'), problems);
  collectSessionConfig(o.sessions ?? {}, prefixed('sessions'), problems);
  collectPlacementConfig(o.placement ?? {}, prefixed('placement'), problems);
  problems.throwIfAny();
}
