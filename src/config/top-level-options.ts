/**
 * The top-level objects users pass — `createSessions({ channel, sessions })` and a node config —
 * refuse unknown keys like every config object, and say where a misplaced key belongs
 * (`createSessions({ cookieName })` → "did you mean sessions.cookieName?").
 */
import { z } from 'zod';
import { UnknownOptionsError } from '../core/errors.js';
import { resolveChannelConfig } from './channel-config.js';
import { CREATE_SESSIONS_OPTIONS, type ForeignTable } from './foreign-options.js';
import { type ParseOptions, parseConfig } from './schema-helpers.js';
import { resolveSessionConfig } from './session-config.js';

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

/** Refuses unknown keys of createSessions' options (all at once, each with a hint). @throws UnknownOptionsError */
export function checkCreateSessionsOptions(options: unknown): void {
  parseConfig(createSessionsSchema, options, '', topLevelHints('channel', CREATE_SESSIONS_OPTIONS));
}
