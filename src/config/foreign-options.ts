/**
 * Options people bring from other libraries (mostly express-session) that clowder does not take,
 * and why. An unknown key that is listed here is refused with its explanation instead of a bare
 * "unknown option", so a user moving from express-session learns what to do in one message.
 *
 * Tables are chosen by a key only that kind of config has (`marker`), so the same explanations
 * apply wherever the config appears: `sessions`, `apps[i].sessions`, a channel, a node.
 * express-session's `cookie`, `resave`, `rolling` and `saveUninitialized` are real session
 * options (session-config.ts), so they are not here.
 */

/** Why an option from elsewhere does not apply, keyed by the option name. */
export type ForeignTable = Readonly<Record<string, string>>;

const SECRET =
  'not needed: clowder does not sign the session cookie, because the session id is 128 random bits that cannot be guessed (signing adds nothing to that); there is nothing to configure, remove it';

/** express-session options in a session config. */
export const EXPRESS_SESSION_OPTIONS: ForeignTable = {
  secret: SECRET,
  store:
    'not needed: clowder is the store (every node holds the sessions in memory, replicated); to keep express-session and use clowder only as its store, use the Store from "clowder/express-session"',
  genid: 'not configurable: session ids are always 128 random bits from crypto.randomBytes (unguessable)',
  name: 'not the cookie name here: the cookie name is cookieName (default "JSESSIONID"); contextName names the context in cluster messages',
  proxy: 'spelled differently: set trustProxy to trust X-Forwarded-Proto behind a proxy',
  unset: 'not configurable: to end a session call req.session.destroy() (it is invalidated on every node)',
};

/** Channel options people guess from other clustering libraries. */
const CHANNEL_OPTIONS: ForeignTable = {
  secret: 'spelled differently: the shared secret of the cluster is clusterKey',
  key: 'spelled differently: the shared secret of the cluster is clusterKey',
  port: 'nested: the cluster port is receiver.port',
  host: 'nested: the cluster address is receiver.address',
  members: 'nested: static members are membership: { type: "static", members: [...] }',
};

const EXPRESS_SESSION_AT_TOP = Object.fromEntries(
  Object.entries(EXPRESS_SESSION_OPTIONS).map(([k, why]) => [k, `an express-session option, and in clowder ${why}`]),
);

/** Top-level options of createSessions({ channel, sessions }). */
export const CREATE_SESSIONS_OPTIONS: ForeignTable = {
  ...EXPRESS_SESSION_AT_TOP,
  cluster: 'spelled differently: createSessions takes channel (the cluster channel options) and sessions',
  port: "nested: the cluster port is channel.receiver.port (the HTTP port is your server's: app.listen(port))",
  host: 'nested: the cluster address is channel.receiver.address',
  members: 'nested: static members are channel.membership: { type: "static", members: [...] }',
};

/** Top-level options of a node config (clowder start, createClusterNode). */
export const NODE_OPTIONS: ForeignTable = {
  ...EXPRESS_SESSION_AT_TOP,
  channel: 'spelled differently: in a node config the channel options are cluster',
};

/** Tables by a key that identifies the kind of config; the first whose marker the schema has applies. */
const TABLES: readonly { marker: string; table: ForeignTable }[] = [
  { marker: 'cookieName', table: EXPRESS_SESSION_OPTIONS },
  { marker: 'clusterKey', table: CHANNEL_OPTIONS },
];

/** The explanation for `key` in a config whose schema has `known` keys, if it is a known foreign option. */
export function foreignOption(key: string, known: readonly string[]): string | undefined {
  for (const { marker, table } of TABLES) {
    if (known.includes(marker)) return Object.hasOwn(table, key) ? table[key] : undefined;
  }
  return undefined;
}
