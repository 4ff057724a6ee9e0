/**
 * Where this node runs, as the BackupManager's placement sees it (node-wide: `placement` in a
 * node config, `createSessions({ placement })` in library mode). Advertised to the other members
 * in the member payload, so copies of a session avoid the host (and zone) of its primary.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { type KeyNamer, Problems, prefixed } from './problems.js';
import { collectConfig, deepFreeze } from './schema-helpers.js';

/** Longest host and zone names accepted (they travel in every heartbeat). */
export const PLACEMENT_HOST_MAX = 253;
export const PLACEMENT_ZONE_MAX = 64;

const name = (max: number, what: string) =>
  z
    .string({ error: `${what} (printable, 1 to ${max} characters)` })
    .regex(new RegExp(`^[\\x21-\\x7e]{1,${max}}$`), { error: `${what} (printable, 1 to ${max} characters)` });

const placementSchema = z.strictObject({
  /**
   * The machine this node runs on; nodes with the same host are kept apart from each other's
   * copies. Default: the operating system's host name. In containers, set it to the machine
   * (Kubernetes: the downward API's spec.nodeName), else every pod is a host of its own.
   */
  host: name(PLACEMENT_HOST_MAX, 'a host name').optional(),
  /** Failure zone (rack, availability zone): copies prefer other zones than their primary's. Default: none. */
  zone: name(PLACEMENT_ZONE_MAX, 'a zone name').optional(),
});

export type PlacementConfigInput = z.input<typeof placementSchema>;
export interface PlacementConfig {
  readonly host: string;
  readonly zone: string | undefined;
}

/** Validates, fills the default host, freezes. @throws ConfigError listing every problem, each naming the key. */
export function resolvePlacementConfig(input: PlacementConfigInput = {}, prefix = 'placement'): PlacementConfig {
  return Problems.resolve((problems) => collectPlacementConfig(input, prefixed(prefix), problems));
}

/** {@link resolvePlacementConfig} recording its problems in `problems` instead; undefined when there is one. */
export function collectPlacementConfig(
  input: unknown,
  name: KeyNamer,
  problems: Problems,
): PlacementConfig | undefined {
  const before = problems.list.length;
  const p = collectConfig(placementSchema, input, name, problems);
  if (p === undefined || problems.list.length > before) return undefined;
  return deepFreeze({ host: p.host ?? (hostname().slice(0, PLACEMENT_HOST_MAX) || 'localhost'), zone: p.zone });
}
