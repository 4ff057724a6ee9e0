/**
 * Where a channel's cluster keys come from, decided once at start:
 *
 * | source           | when                                              |
 * |------------------|---------------------------------------------------|
 * | `clusterKey`     | `clusterKey` is configured (a key or a list)      |
 * | `keyFile`        | `keyFile` is configured (not created beyond loopback: it must be the same file on every host) |
 * | `defaultKeyFile` | neither, and not `insecure`: the per-user file, created on first use |
 * | `none`           | `insecure: true` and neither: unauthenticated     |
 *
 * Passphrase-like keys (see config/cluster-key.ts) are stretched with scrypt here, off the event
 * loop; every node derives the same bytes from the same key.
 */

import { type ChannelConfig, exposure } from '../config/channel-config.js';
import { isPassphraseLike, normalizeClusterKeys } from '../config/cluster-key.js';
import { ConfigError } from '../core/errors.js';
import { ClusterKeys, stretchPassphrase } from '../wire/auth.js';
import { defaultKeyFile, loadKeyFile } from './key-file.js';

export type KeySource = 'clusterKey' | 'keyFile' | 'defaultKeyFile' | 'none';

/** The keys a channel runs with, and what to report about them (never the keys). */
export interface ResolvedKeys {
  readonly keys: ClusterKeys | undefined;
  readonly source: KeySource;
  /** The key file read, for the file sources. */
  readonly file?: string;
  /** True when this start created the key file. */
  readonly created: boolean;
  /** How many of the keys were passphrase-like and stretched. */
  readonly stretched: number;
}

/** Resolves the keys of `config` (reads or creates the key file when that is the source). */
export async function resolveClusterKeys(config: ChannelConfig, env = process.env): Promise<ResolvedKeys> {
  let list = normalizeClusterKeys(config.clusterKey);
  let source: KeySource = 'clusterKey';
  let file: string | undefined;
  let created = false;
  if (list === undefined) {
    if (config.keyFile !== undefined) {
      source = 'keyFile';
      file = config.keyFile;
    } else if (!config.insecure) {
      source = 'defaultKeyFile';
      file = defaultKeyFile(env);
    } else {
      return { keys: undefined, source: 'none', created: false, stretched: 0 };
    }
    // A missing explicit file is created only for a cluster that stays on this host: beyond it,
    // a key made here would differ from the other hosts' and the cluster would not form.
    const loaded = await loadKeyFile(file, source === 'defaultKeyFile' || exposure(config) === undefined);
    list = loaded.keys;
    created = loaded.created;
  }
  const { secrets, stretched } = await secretsOf(list);
  return { keys: new ClusterKeys(secrets), source, file, created, stretched };
}

/** The keys as ClusterKeys takes them: passphrase-like ones stretched. */
async function secretsOf(list: readonly string[]): Promise<{ secrets: (string | Buffer)[]; stretched: number }> {
  let stretched = 0;
  const secrets = await Promise.all(
    list.map((k) => {
      if (!isPassphraseLike(k)) return k;
      stretched++;
      return stretchPassphrase(k);
    }),
  );
  return { secrets, stretched };
}

/**
 * Replaces the keys of a running channel in place with `input` (a key or a rotation list, checked
 * like `clusterKey`); returns what the channel reports from now on.
 * @throws ConfigError naming `clusterKey` (never showing a key)
 */
export async function replaceClusterKeys(keys: ClusterKeys, input: unknown): Promise<ResolvedKeys> {
  const list = normalizeClusterKeys(input);
  if (list === undefined) throw new ConfigError('clusterKey', 'a key or a list of keys');
  const { secrets, stretched } = await secretsOf(list);
  keys.replace(secrets);
  return { keys, source: 'clusterKey', created: false, stretched };
}
