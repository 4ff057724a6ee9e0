/**
 * The optional native AES-256-GCM module (native/gcm.c, built by `npm install` when a C toolchain
 * is present). With it, a connection keeps one cipher context per direction and seals or opens a
 * record in place; without it, records go through node:crypto. Both produce the same wire format.
 * `CLOWDER_NATIVE_GCM=off` in the environment forces node:crypto (a diagnostic).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** An opaque cipher context of the native module. */
export type GcmContext = { readonly __brand: 'clowder_gcm' };

/** The native module's functions (argument checks happen in C: a bad range throws, never overflows). */
export interface NativeGcm {
  create(key: Uint8Array, decrypt: boolean): GcmContext;
  begin(ctx: GcmContext, nonce: Uint8Array, aad: Uint8Array, offset: number, length: number): void;
  update(
    ctx: GcmContext,
    src: Uint8Array,
    offset: number,
    length: number,
    dst: Uint8Array | null,
    dstOffset: number,
  ): void;
  finish(ctx: GcmContext, tag: Uint8Array, offset: number): boolean;
}

/** Which implementation seals cluster records. */
export type GcmEngine = 'native' | 'node:crypto';

function load(): NativeGcm | undefined {
  if (process.env.CLOWDER_NATIVE_GCM === 'off') return undefined;
  // dist/wire/ (package) or .test-build/src/wire/ (tests): build/ is at the package root above.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const file = join(dir, 'build', 'Release', 'clowder_gcm.node');
    if (existsSync(file)) {
      try {
        return createRequire(import.meta.url)(file) as NativeGcm;
      } catch {
        return undefined; // built for another Node ABI or platform: node:crypto does the job
      }
    }
    dir = dirname(dir);
  }
  return undefined;
}

/** The native module, or undefined when it is not built (or disabled). */
export const nativeGcm: NativeGcm | undefined = load();

/** The implementation records are sealed with by default in this process. */
export const gcmEngine: GcmEngine = nativeGcm !== undefined ? 'native' : 'node:crypto';
