/**
 * Peers on one host talk over a Unix stream socket instead of TCP loopback: on Linux, a stream
 * through the kernel's TCP stack costs several times the CPU per write and per read that a Unix
 * socket does, and nodes sharing a host (one process per core) exchange every replicated change.
 *
 * The socket lives in Linux's abstract namespace (no file: it vanishes with the process, and it is
 * scoped to the network namespace, so only a peer that shares this node's network stack reaches
 * it). Its name carries the member id, 128 random bits chosen at start: nobody can take the name
 * before the node binds it, and a name is never reused by a later process. A peer that does not
 * find the name (another host, another namespace, a node without it) connects over TCP. Whatever
 * answers is authenticated by the same hello as over TCP.
 */

/** Abstract Unix sockets exist on Linux only; elsewhere every connection is TCP. */
export const LOCAL_SOCKETS_SUPPORTED = process.platform === 'linux';

/** The abstract socket name of member `id` (the leading NUL selects the abstract namespace). */
export function localSocketPath(id: string): string {
  return `\0clowder/${id}`;
}

/** A connect error that means "nobody listens on that local socket": try TCP instead. */
export function isLocalMiss(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ECONNREFUSED' || code === 'ENOENT';
}
