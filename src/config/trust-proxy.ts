/**
 * `trustProxy`: which reverse proxies in front of the HTTP server are believed when they say how
 * the client connected (`X-Forwarded-Proto`). Accepts what Express's 'trust proxy' accepts:
 * `false` (default: believe none), `true` (believe any peer), a number of hops (the first n
 * proxies in front of the server; for the one decision clowder takes from a proxy only the
 * immediate peer counts, so any n ≥ 1 trusts it), or addresses and CIDR ranges (a list or one
 * comma-separated string), with the names `loopback`, `linklocal` and `uniquelocal`.
 */
import { BlockList, isIP } from 'node:net';
import { ConfigError } from '../core/errors.js';

/** Express's named ranges. */
const NAMED: Record<string, readonly string[]> = {
  loopback: ['127.0.0.1/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

/** What a `trustProxy` value accepts, for error messages. */
export const TRUST_PROXY_FORM =
  'false, true, a number of proxy hops (0-255), or a list of proxy addresses / CIDR ranges ' +
  '(an array or a comma-separated string; "loopback", "linklocal", "uniquelocal" name ranges)';

/** A validated `trustProxy`: answers whether the peer at `address` (hop 0) is a trusted proxy. */
export class ProxyTrust {
  readonly #all: boolean;
  readonly #list: BlockList | undefined;
  /** The setting as given (normalised), for stats and messages. */
  readonly setting: boolean | number | readonly string[];

  private constructor(all: boolean, list: BlockList | undefined, setting: boolean | number | readonly string[]) {
    this.#all = all;
    this.#list = list;
    this.setting = setting;
  }

  /** Believes no proxy (the default). */
  static readonly NONE = new ProxyTrust(false, undefined, false);

  /** Whether the directly connected peer `address` (a socket's remoteAddress) is a trusted proxy. */
  trustsPeer(address: string | undefined): boolean {
    if (this.#all) return true;
    const list = this.#list;
    if (list === undefined || address === undefined) return false;
    const v = isIP(address);
    return v !== 0 && list.check(address, v === 4 ? 'ipv4' : 'ipv6');
  }

  /** @throws ConfigError naming `key` when `input` is not one of the accepted forms. */
  static parse(input: unknown, key: string): ProxyTrust {
    if (input instanceof ProxyTrust) return input;
    if (input === undefined || input === false || input === 0) return ProxyTrust.NONE;
    if (input === true) return new ProxyTrust(true, undefined, true);
    if (typeof input === 'number') {
      if (!Number.isInteger(input) || input < 0 || input > 255) throw new ConfigError(key, TRUST_PROXY_FORM, input);
      return new ProxyTrust(true, undefined, input);
    }
    let items: unknown[];
    if (typeof input === 'string') items = input.split(',');
    else if (Array.isArray(input)) items = input;
    else throw new ConfigError(key, TRUST_PROXY_FORM, input);
    const list = new BlockList();
    const setting: string[] = [];
    for (const [i, raw] of items.entries()) {
      const itemKey = Array.isArray(input) ? `${key}.${i}` : key;
      if (typeof raw !== 'string') throw new ConfigError(itemKey, 'an IP address, a CIDR range or a range name', raw);
      const item = raw.trim();
      for (const range of NAMED[item] ?? [item]) addRange(list, range, itemKey, item);
      setting.push(item);
    }
    if (setting.length === 0) throw new ConfigError(key, TRUST_PROXY_FORM, input);
    return new ProxyTrust(false, list, Object.freeze(setting));
  }

  toJSON(): boolean | number | readonly string[] {
    return this.setting;
  }
}

function addRange(list: BlockList, range: string, key: string, given: string): void {
  const slash = range.indexOf('/');
  const address = slash < 0 ? range : range.slice(0, slash);
  const v = isIP(address);
  const bits = slash < 0 ? undefined : range.slice(slash + 1);
  const max = v === 4 ? 32 : 128;
  if (v === 0 || (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= max)))
    throw new ConfigError(
      key,
      'an IP address ("10.0.0.1", "::1"), a CIDR range ("10.0.0.0/8", "fc00::/7") or "loopback", "linklocal", "uniquelocal"',
      given,
    );
  const type = v === 4 ? 'ipv4' : 'ipv6';
  if (bits === undefined) list.addAddress(address, type);
  else list.addSubnet(address, Number(bits), type);
}

/** The accepted input forms of `trustProxy`. */
export type TrustProxyInput = boolean | number | string | readonly string[];
