/**
 * `clowder/express-session`: for applications that keep express-session itself (NestJS, code that
 * reads express-session's internals) and let clowder replicate its sessions:
 *
 *   import session from 'express-session';
 *   import { ClowderStore, createSessions } from 'clowder/express-session';
 *   const sessions = createSessions({ channel: { … } });
 *   app.use(session({ store: new ClowderStore(sessions), secret, resave: false, saveUninitialized: false }));
 *
 * Import createSessions from here, not from 'clowder': this entry leaves the typing of
 * `req.session` to express-session, where 'clowder' types it for clowder's own middleware.
 */
export {
  ClowderStore,
  type ClowderStoreOptions,
  type ClowderStoreStats,
  default,
  type SessionSource,
} from './http/express-session-store.js';
export { createSessions, SessionCluster, type SessionsOptions } from './node/session-cluster.js';
