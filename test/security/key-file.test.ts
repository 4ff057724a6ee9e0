/**
 * The per-user key file and the key rules: created 0600 (directory 0700) in a fresh directory and
 * reused; refused with the chmod that fixes it when group or others can read or write it (or its
 * directory), or when another user owns it; created once when many processes race; keys that are
 * too short or patterns refused without being echoed; passphrase-like keys stretched (scrypt) the
 * same on every node. Everything under mkdtemp directories, removed afterwards.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultKeyFile, loadKeyFile } from '../../src/channel/key-file.js';
import { resolveClusterKeys } from '../../src/channel/key-source.js';
import { resolveChannelConfig } from '../../src/config/channel-config.js';
import { estimateKeyBits, isPassphraseLike } from '../../src/config/cluster-key.js';
import { type Channel, ClusterError, ConfigError, createChannel, ErrorCode, silentLogger } from '../../src/index.js';
import { ClusterKeys } from '../../src/wire/auth.js';
import { FrameType } from '../../src/wire/frame.js';
import { encodeHello } from '../../src/wire/hello.js';
import { joined, Resources, rawConnect, rawDescriptor } from '../helpers/raw-peer.js';
import { waitFor } from '../helpers/wait.js';

const KEY_FILE_MODULE = fileURLToPath(new URL('../../src/channel/key-file.js', import.meta.url));
const posix = process.getuid !== undefined;

let root = '';
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'clowder-keyfile-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let n = 0;
/** A fresh directory path (not created) under the test's temporary root. */
function freshDir(): string {
  return join(root, `d${n++}`);
}

/** Asserts `p` rejects with ERR_CLOWDER_KEY_FILE whose message matches `re`; returns the message. */
async function keyFileError(p: Promise<unknown>, re: RegExp): Promise<string> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ClusterError, `expected a ClusterError, got ${String(caught)}`);
  assert.equal(caught.code, ErrorCode.KEY_FILE, caught.message);
  assert.match(caught.message, re);
  return caught.message;
}

describe('key file: creation, reuse, permissions', () => {
  it('the default path is $XDG_CONFIG_HOME/clowder/cluster.key, else ~/.clowder/cluster.key', () => {
    assert.equal(defaultKeyFile({ XDG_CONFIG_HOME: '/cfg' }), '/cfg/clowder/cluster.key');
    assert.equal(defaultKeyFile({}), join(homedir(), '.clowder', 'cluster.key'));
    assert.equal(defaultKeyFile({ XDG_CONFIG_HOME: 'relative' }), join(homedir(), '.clowder', 'cluster.key'));
  });

  it('is created 0600 in a new 0700 directory with a random key, then reused', async () => {
    const dir = freshDir();
    const file = join(dir, 'cluster.key');
    const first = await loadKeyFile(file, true);
    assert.equal(first.created, true);
    assert.equal(first.keys.length, 1);
    assert.equal(isPassphraseLike(first.keys[0]!), false, 'a generated key is used as it is (no scrypt)');
    assert.equal(Buffer.from(first.keys[0]!, 'base64').length, 32);
    if (posix) {
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
    }
    const again = await loadKeyFile(file, true);
    assert.deepEqual(again, { keys: first.keys, created: false });
    assert.deepEqual(await readdir(dir), ['cluster.key'], 'no temporary file left');
  });

  it('two channels with the same keyFile form a cluster; stats and the start log name the source, never the key', async () => {
    const file = join(freshDir(), 'cluster.key');
    const res = new Resources();
    const lines: string[] = [];
    const logger = {
      debug: () => {},
      info: (obj: object, msg?: string) => lines.push(JSON.stringify({ ...obj, msg })),
      warn: (obj: object, msg?: string) => lines.push(JSON.stringify({ ...obj, msg })),
      error: (obj: object, msg?: string) => lines.push(JSON.stringify({ ...obj, msg })),
      child: () => logger,
    };
    try {
      const [a, b] = await Promise.all([res.node('a', { keyFile: file }, logger), res.node('b', { keyFile: file })]);
      await joined(a!, b!);
      const auth = a!.stats().auth;
      assert.equal(auth.keySource, 'keyFile');
      assert.equal(auth.keyFile, file);
      assert.equal(auth.keys, 1);
      assert.ok(auth.acceptedByKey[0]! > 0, 'hellos and heartbeats verified with key 0');
      const key = (await readFile(file, 'utf8')).trim();
      const started = lines.find((l) => l.includes('"channel started"'));
      assert.ok(started, 'a channel started line');
      assert.match(started, /"keySource":"keyFile"/);
      assert.ok(!lines.some((l) => l.includes(key)), 'the key is never logged');
      assert.ok(!JSON.stringify(a!.stats()).includes(key), 'the key is not in stats');
    } finally {
      await res.close();
    }
  });

  it('with no key configured the channel reads the default file (keySource defaultKeyFile); insecure: true uses none', async () => {
    const dir = freshDir();
    const env = { XDG_CONFIG_HOME: dir };
    const auto = await resolveClusterKeys(resolveChannelConfig({}), env);
    assert.equal(auto.source, 'defaultKeyFile');
    assert.equal(auto.file, join(dir, 'clowder', 'cluster.key'));
    assert.equal(auto.created, true);
    assert.ok(auto.keys);
    const none = await resolveClusterKeys(resolveChannelConfig({ insecure: true }), env);
    assert.deepEqual([none.source, none.keys], ['none', undefined]);
  });

  it('a file readable or writable by group or others is refused with chmod 600, key not shown', {
    skip: !posix,
  }, async () => {
    const file = join(freshDir(), 'cluster.key');
    const { keys } = await loadKeyFile(file, true);
    for (const mode of [0o644, 0o640, 0o620, 0o604, 0o660]) {
      await chmod(file, mode);
      const message = await keyFileError(loadKeyFile(file, true), new RegExp(`chmod 600 ${file}`));
      assert.ok(!message.includes(keys[0]!), 'key not echoed');
    }
    await chmod(file, 0o600);
    assert.deepEqual((await loadKeyFile(file, true)).keys, keys);
    await chmod(file, 0o400);
    assert.deepEqual((await loadKeyFile(file, true)).keys, keys, 'read-only for the owner is fine');
  });

  it('a channel refuses to start with such a file (nothing is bound)', { skip: !posix }, async () => {
    const file = join(freshDir(), 'cluster.key');
    await loadKeyFile(file, true);
    await chmod(file, 0o644);
    const ch: Channel = createChannel({ keyFile: file, receiver: { port: 0 } }, { logger: silentLogger });
    await keyFileError(ch.start(), /chmod 600/);
    assert.equal(ch.running, false);
  });

  it('a directory writable by group or others is refused with chmod 700', { skip: !posix }, async () => {
    const dir = freshDir();
    const file = join(dir, 'cluster.key');
    await loadKeyFile(file, true);
    await chmod(dir, 0o777);
    await keyFileError(loadKeyFile(file, true), new RegExp(`chmod 700 ${dir}`));
    await chmod(dir, 0o1777); // sticky, like /tmp: others cannot replace our file
    await loadKeyFile(file, true);
    await chmod(dir, 0o700);
  });

  it('a file owned by another user is refused', { skip: process.getuid?.() !== 0 }, async () => {
    const file = join(freshDir(), 'cluster.key');
    await loadKeyFile(file, true);
    await chown(file, 12345, 12345);
    await keyFileError(loadKeyFile(file, true), /owned by another user \(uid 12345/);
  });

  it('an explicit key file that is missing is created only when the cluster stays on this host', async () => {
    const file = join(freshDir(), 'cluster.key');
    const beyond = resolveChannelConfig({ keyFile: file, membership: { type: 'static', members: ['10.0.0.2:4000'] } });
    await keyFileError(resolveClusterKeys(beyond), /does not exist.*openssl rand -base64 32.*copy it to every host/);
    const local = await resolveClusterKeys(resolveChannelConfig({ keyFile: file }));
    assert.deepEqual([local.source, local.created], ['keyFile', true]);
  });

  it('holds one key per line (a rotation list, first sends), # comments; too many or bad lines are refused', async () => {
    const dir = freshDir();
    await mkdir(dir, { mode: 0o700 });
    const file = join(dir, 'cluster.key');
    const k1 = 'q8Vw3nZ0Lr5TgY2mKc7XbH1sJd9FpA4eUo6iNx0lWzQ=';
    const k2 = 'R2dT7kPq9Xv4Lm1Nc8Bz5Hs3Jw6Ye0Ua2Gi7Ko9Ft1E=';
    await writeFile(file, `# rotation\n${k2}\n\n${k1}\n`, { mode: 0o600 });
    assert.deepEqual((await loadKeyFile(file, false)).keys, [k2, k1]);
    await writeFile(file, `${[k1, k2, `${k1}x`, `${k2}x`, `${k1}y`].join('\n')}\n`);
    await keyFileError(loadKeyFile(file, false), /holds 5 keys; at most 4/);
    await writeFile(file, '# nothing\n');
    await keyFileError(loadKeyFile(file, false), /holds no key/);
    const short = 'tooShortSecret12';
    await writeFile(file, `${k1}\n${short}\n`);
    await assert.rejects(
      loadKeyFile(file, false),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.key === `keyFile (${file}, line 2)` &&
        /at least 32 characters \(got 16/.test(err.message) &&
        !err.message.includes(short),
    );
  });
});

describe('key file: concurrent creation', () => {
  it('several processes creating it at the same moment all end up with the one key', async () => {
    const dir = freshDir();
    const file = join(dir, 'cluster.key');
    const N = 6;
    const script = `
      import { createHash } from 'node:crypto';
      import { loadKeyFile } from ${JSON.stringify(KEY_FILE_MODULE)};
      process.stdout.write('ready\\n');
      process.stdin.once('data', async () => {
        const r = await loadKeyFile(${JSON.stringify(file)}, true);
        const hash = createHash('sha256').update(r.keys[0]).digest('hex');
        process.stdout.write(JSON.stringify({ hash, created: r.created }) + '\\n');
        process.exit(0);
      });`;
    const children = Array.from({ length: N }, () =>
      spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] }),
    );
    try {
      const outputs = children.map((c) => {
        let text = '';
        c.stdout.setEncoding('utf8');
        c.stdout.on('data', (d: string) => {
          text += d;
        });
        return () => text;
      });
      // A barrier: every process is up before any of them touches the file.
      await waitFor(() => outputs.every((o) => o().startsWith('ready\n')), 'every process ready', {
        timeoutMs: 20_000,
      });
      for (const c of children) c.stdin.write('go\n');
      await waitFor(() => outputs.every((o) => o().split('\n').length > 2), 'every process done', {
        timeoutMs: 20_000,
      });
      const results = outputs.map((o) => JSON.parse(o().split('\n')[1]!) as { hash: string; created: boolean });
      const key = (await readFile(file, 'utf8')).trim();
      const hash = createHash('sha256').update(key).digest('hex');
      assert.deepEqual(
        results.map((r) => r.hash),
        Array(N).fill(hash),
        'every process read the key that is in the file',
      );
      assert.equal(results.filter((r) => r.created).length, 1, 'exactly one process created it');
      assert.deepEqual(await readdir(dir), ['cluster.key'], 'no temporary file left');
    } finally {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    }
  });

  it('channels of one process starting at once share one key and form one cluster', async () => {
    const res = new Resources();
    const file = join(freshDir(), 'cluster.key');
    try {
      const nodes = await Promise.all(['a', 'b', 'c'].map((name) => res.node(name, { keyFile: file })));
      await waitFor(() => nodes.every((x) => x.members().length === 2), 'three channels to see each other', {
        timeoutMs: 15_000,
      });
    } finally {
      await res.close();
    }
  });
});

describe('key rules', () => {
  it('a clusterKey shorter than 32 characters is refused without echoing it', () => {
    for (const bad of ['short', 'abcdefghijklmnopqrstuvwxyz01234']) {
      assert.throws(
        () => resolveChannelConfig({ clusterKey: bad }),
        (err: unknown) =>
          err instanceof ConfigError &&
          err.key === 'clusterKey' &&
          err.message.includes(`got ${bad.length}`) &&
          !err.message.includes(bad),
      );
    }
    assert.throws(
      () => resolveChannelConfig({ clusterKey: ['q8Vw3nZ0Lr5TgY2mKc7XbH1sJd9FpA4eUo6iNx0lWzQ=', 'secret-but-short'] }),
      (err: unknown) => err instanceof ConfigError && err.key === 'clusterKey.1' && !err.message.includes('secret'),
    );
    assert.throws(
      () => resolveChannelConfig({ clusterKey: 12345678 as unknown as string }),
      (err: unknown) => err instanceof ConfigError && !err.message.includes('12345678'),
    );
  });

  it('a key that repeats a few characters is refused with the openssl advice', () => {
    for (const bad of ['x'.repeat(40), 'ab'.repeat(20), '0123'.repeat(10)]) {
      assert.ok(estimateKeyBits(bad) < 64);
      assert.throws(
        () => resolveChannelConfig({ clusterKey: bad }),
        (err: unknown) =>
          err instanceof ConfigError && /openssl rand -base64 32/.test(err.message) && !err.message.includes(bad),
      );
    }
  });

  it('clusterKey and keyFile together are refused (one source for the key)', () => {
    assert.throws(
      () =>
        resolveChannelConfig({ clusterKey: 'q8Vw3nZ0Lr5TgY2mKc7XbH1sJd9FpA4eUo6iNx0lWzQ=', keyFile: '/x/cluster.key' }),
      (err: unknown) => err instanceof ConfigError && err.key === 'keyFile',
    );
  });

  it('a list holds 1 to 4 distinct keys', () => {
    const k = (i: number) => `q8Vw3nZ0Lr5TgY2mKc7XbH1sJd9FpA4eUo6iNx0lWz${i}=`;
    assert.deepEqual(resolveChannelConfig({ clusterKey: [k(1), k(2)] }).clusterKey, [k(1), k(2)]);
    assert.throws(() => resolveChannelConfig({ clusterKey: [] }), ConfigError);
    assert.throws(() => resolveChannelConfig({ clusterKey: [1, 2, 3, 4, 5].map(k) }), /1 to 4 keys/);
    assert.throws(() => resolveChannelConfig({ clusterKey: [k(1), k(1)] }), /without repeated keys/);
  });

  it('which keys count as passphrase-like', () => {
    assert.equal(isPassphraseLike('q8Vw3nZ0Lr5TgY2mKc7XbH1sJd9FpA4eUo6iNx0lWzQ='), false, 'openssl rand -base64 32');
    assert.equal(isPassphraseLike('9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'), false, 'hex 32');
    assert.equal(isPassphraseLike('correct-horse-battery-staple-cluster-key-0001'), true);
    assert.equal(isPassphraseLike('the quick brown fox jumps over the lazy dog'), true);
    assert.equal(isPassphraseLike('abcdefghijklmnopqrstuvwxyz012345'), true, 'one case only');
  });

  it('a passphrase-like key is stretched with scrypt: nodes sharing it form a cluster, a hello made with it unstretched is refused', async () => {
    const passphrase = 'correct-horse-battery-staple-cluster-key-0001';
    const res = new Resources();
    try {
      const [a, b] = await Promise.all([
        res.node('a', { clusterKey: passphrase }),
        res.node('b', { clusterKey: passphrase }),
      ]);
      await joined(a!, b!);
      const before = a!.stats().transport.authFailures;
      const conn = await rawConnect(res, a!.local.port);
      conn.socket.write(
        encodeHello(FrameType.HELLO, rawDescriptor(res.group.domain), new ClusterKeys(passphrase), true).frame,
      );
      await waitFor(() => conn.closed(), 'the node to refuse the unstretched key', { timeoutMs: 15_000 });
      assert.equal(conn.frames.length, 0);
      assert.equal(a!.stats().transport.authFailures, before + 1);
    } finally {
      await res.close();
    }
  });
});
