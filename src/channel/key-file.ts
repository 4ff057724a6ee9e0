/**
 * The per-user cluster key file (Erlang's cookie): with no `clusterKey` configured, a node reads
 * its key from a file only its user can read, created on first use, so every cluster on a host is
 * authenticated with no set-up and other users of the host are locked out.
 *
 * Creation is race-free: many nodes of one user may start at once (tests, `node:cluster`
 * workers). Each writes a fresh key to a temporary file (mode 0600, exclusive create) and
 * hard-links it to the final name, which fails if another process got there first; every racer
 * then reads the file that won, so all end up with the same key and nobody ever reads a partly
 * written file.
 *
 * At every start the file must be a regular file owned by this user (or root) and neither
 * readable nor writable by group or others, in a directory that group and others cannot write
 * (unless sticky); otherwise the node refuses to start with the `chmod` that fixes it. Errors
 * never contain key material.
 */
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { link, mkdir, open, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { checkClusterKey, MAX_CLUSTER_KEYS } from '../config/cluster-key.js';
import { ClusterError, ErrorCode } from '../core/errors.js';

/** A key file larger than this is not a key file. */
const MAX_KEY_FILE_BYTES = 16 * 1024;

/** `$XDG_CONFIG_HOME/clowder/cluster.key` when XDG_CONFIG_HOME is set (absolute), else `~/.clowder/cluster.key`. */
export function defaultKeyFile(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'clowder', 'cluster.key');
  return join(homedir(), '.clowder', 'cluster.key');
}

/** What a key file held. */
export interface KeyFileContents {
  /** The keys in order (the first sends). */
  readonly keys: readonly string[];
  /** True when this call created the file. */
  readonly created: boolean;
}

/**
 * Reads the key file at `path`, creating it (with a fresh random key) when it does not exist and
 * `create` is true.
 * @throws ClusterError ERR_CLOWDER_KEY_FILE (permissions, ownership, unreadable) or ConfigError
 *   (a key in it is too short or weak), never showing key material.
 */
export async function loadKeyFile(path: string, create: boolean): Promise<KeyFileContents> {
  let created = false;
  let text = await readChecked(path);
  if (text === undefined) {
    if (!create) {
      throw keyFileError(
        path,
        `does not exist. Create it on one host with \`umask 077; openssl rand -base64 32 > ${path}\` and copy it to every host of the cluster`,
      );
    }
    created = await createKeyFile(path);
    text = await readChecked(path);
    if (text === undefined) throw keyFileError(path, 'vanished right after it was created');
  }
  return { keys: parseKeyFile(text, path), created };
}

/** Non-empty lines that are not `#` comments, each a key. */
function parseKeyFile(text: string, path: string): string[] {
  const keys: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    checkClusterKey(line, `keyFile (${path}, line ${i + 1})`);
    keys.push(line);
  }
  if (keys.length === 0) throw keyFileError(path, 'holds no key (one key per line; `openssl rand -base64 32`)');
  if (keys.length > MAX_CLUSTER_KEYS)
    throw keyFileError(path, `holds ${keys.length} keys; at most ${MAX_CLUSTER_KEYS} (the first sends)`);
  return keys;
}

/** The file's text after the permission checks; undefined when it does not exist. */
async function readChecked(path: string): Promise<string | undefined> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw keyFileError(path, `cannot be opened (${code ?? (err as Error).message})`);
  }
  try {
    // Checked on the open descriptor: what is read is what was checked.
    const st = await fh.stat();
    if (!st.isFile()) throw keyFileError(path, 'is not a regular file');
    checkOwnerAndMode(path, st);
    await checkDirectory(dirname(path));
    if (st.size > MAX_KEY_FILE_BYTES) throw keyFileError(path, `is larger than ${MAX_KEY_FILE_BYTES} bytes`);
    const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > MAX_KEY_FILE_BYTES) throw keyFileError(path, `is larger than ${MAX_KEY_FILE_BYTES} bytes`);
    }
    const text = buf.toString('utf8', 0, n);
    buf.fill(0);
    return text;
  } finally {
    await fh.close();
  }
}

/** POSIX only (Windows has neither uid nor these mode bits). */
function checkOwnerAndMode(path: string, st: Stats): void {
  const uid = process.getuid?.();
  if (uid === undefined) return;
  if (st.uid !== uid && st.uid !== 0) {
    throw keyFileError(
      path,
      `is owned by another user (uid ${st.uid}, this process runs as ${uid}): another user could know the key. Use a file of your own (\`chown ${uid} ${path}\`)`,
    );
  }
  if ((st.mode & 0o077) !== 0) {
    throw keyFileError(
      path,
      `is accessible by group or others (mode ${(st.mode & 0o777).toString(8).padStart(3, '0')}): run \`chmod 600 ${path}\` (and replace the key if others may have read it)`,
    );
  }
}

/** Another user who can write the directory could replace the file with a key they know. */
async function checkDirectory(dir: string): Promise<void> {
  if (process.getuid === undefined) return;
  const st = await stat(dir);
  const sticky = (st.mode & 0o1000) !== 0;
  if ((st.mode & 0o022) !== 0 && !sticky) {
    throw keyFileError(
      dir,
      `is writable by group or others (mode ${(st.mode & 0o777).toString(8).padStart(3, '0')}), so its key file could be replaced: run \`chmod 700 ${dir}\``,
    );
  }
}

/** Creates the file with a fresh key unless another process does first; true when this call created it. */
async function createKeyFile(path: string): Promise<boolean> {
  const dir = dirname(path);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw keyFileError(
      dir,
      `cannot be created (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): set keyFile to a writable place, or clusterKey`,
    );
  }
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', 0o600).catch((err: NodeJS.ErrnoException) => {
    throw keyFileError(
      path,
      `cannot be created (${err.code ?? err.message}): set keyFile to a writable place, or clusterKey`,
    );
  });
  try {
    try {
      await fh.writeFile(`${randomBytes(32).toString('base64')}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await link(tmp, path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false; // another process won: use its key
      throw keyFileError(path, `cannot be created (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

function keyFileError(path: string, problem: string): ClusterError {
  return new ClusterError(ErrorCode.KEY_FILE, `cluster key file ${path} ${problem}`);
}
