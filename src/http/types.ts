/**
 * TypeScript declarations for applications: `req.session`, `req.sessionID` and `req.jvmRoute` on
 * node:http's IncomingMessage (and so on Express's Request), with the application's own
 * SessionData, as with express-session:
 *
 *   declare module 'clowder' {
 *     interface SessionData { user: string; views: number }
 *   }
 *   app.get('/', (req, res) => { req.session.views = (req.session.views ?? 0) + 1; });
 */
import type { SessionApi } from './session-handle.js';

/**
 * The data your sessions hold, for TypeScript (`req.session.user`), declared by the application
 * as with express-session: `declare module 'clowder' { interface SessionData { user: string } }`.
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by applications through declaration merging
export interface SessionData {}

/** `req.session` as typed: its methods and reserved properties, and the data (each optional). */
export type ClowderSession = SessionApi & Partial<SessionData>;

declare module 'http' {
  interface IncomingMessage {
    /**
     * The session (clowder's middleware or node). Reading creates nothing; the first write creates
     * it. Undefined outside a mounted context, after destroy() and once the response ended.
     */
    session: ClowderSession;
    /** The session's id; before the session exists, the id it will get. */
    sessionID: string;
    /** This node's name (jvmRoute), the suffix of the session cookie. */
    jvmRoute: string;
  }
}
