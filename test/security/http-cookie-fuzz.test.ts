/**
 * Property-based fuzzing of the Cookie header scan (`findCookie`, `findCookies`) against a
 * reference parser of RFC 6265 cookie-pairs written the obvious way (split at every ";", name
 * before the first "=", spaces and tabs trimmed, one pair of double quotes removed). Headers mix
 * well-formed pairs with tricky separators, quotes, spaces, `=` and the cookie name inside values,
 * duplicate names and names that are prefixes or suffixes of the one looked for; and arbitrary
 * strings over the same characters. Neither function may throw. Short by default
 * (CLOWDER_FUZZ_RUNS for a long run, see test/helpers/fuzz.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { findCookie, findCookies } from '../../src/http/cookie.js';
import { fuzzRuns } from '../helpers/fuzz.js';

function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s[a] === ' ' || s[a] === '\t')) a++;
  while (b > a && (s[b - 1] === ' ' || s[b - 1] === '\t')) b--;
  return s.slice(a, b);
}

/** Every value of cookie `name` in header order (RFC 6265 §4.2.1 cookie-pairs, §5.2 trimming). */
function reference(header: string, name: string): string[] {
  const values: string[] = [];
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || trimOws(pair.slice(0, eq)) !== name) continue;
    let value = trimOws(pair.slice(eq + 1));
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    values.push(value);
  }
  return values;
}

const NAMES = ['JSESSIONID', 'a', 'sid', 'J'];
/** The name looked for (often), and names near it: prefixes, suffixes, other case, it twice, empty. */
function nearName(name: string): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant(name) },
    fc.constantFrom(
      name.slice(1),
      name.slice(0, -1),
      `x${name}`,
      `${name}x`,
      `${name}2`,
      name.toLowerCase(),
      `${name}${name}`,
      '',
      'other',
    ),
  );
}
const tricky = fc.constantFrom(
  ' ',
  '\t',
  ';',
  '=',
  '"',
  ',',
  '\\',
  'a',
  'J',
  'JSESSIONID',
  'sid',
  '.',
  '0',
  'é',
  '\u00a0',
);
const ows = fc.string({ unit: fc.constantFrom(' ', '\t'), maxLength: 2 });
function value(name: string): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ unit: fc.oneof(tricky, fc.constant(`${name}=`)), maxLength: 8 }),
    fc.constantFrom('0123456789ABCDEF0123456789ABCDEF.a', '"0123456789ABCDEF0123456789ABCDEF.a"', '""', '"', ''),
    fc.string({ maxLength: 6 }),
  );
}
function pair(name: string): fc.Arbitrary<string> {
  return fc
    .tuple(ows, nearName(name), ows, fc.constantFrom('=', '=', '=', ' = ', ''), ows, value(name), ows)
    .map((parts) => parts.join(''));
}
const separator = fc.constantFrom(';', '; ', ';;', ' ; ', ';\t', ' ', '', ', ');
/** A name and a header to look for it in. */
const named = fc.constantFrom(...NAMES).chain((name) =>
  fc.tuple(
    fc.constant(name),
    fc.oneof(
      fc.tuple(fc.array(pair(name), { maxLength: 6 }), separator).map(([pairs, sep]) => pairs.join(sep)),
      fc.array(fc.tuple(pair(name), separator), { maxLength: 6 }).map((xs) => xs.map(([p, s]) => p + s).join('')),
      fc.string({ unit: fc.oneof(tricky, fc.constant(name)), maxLength: 40 }),
    ),
  ),
);

function expected(values: string[]): string | string[] | undefined {
  return values.length === 0 ? undefined : values.length === 1 ? values[0] : values;
}

describe('cookie header scan, fuzzed against a reference parser', () => {
  test('findCookies and findCookie agree with the reference on arbitrary headers, and never throw', () => {
    fc.assert(
      fc.property(named, ([name, h]) => {
        const values = reference(h, name);
        assert.deepEqual(findCookies(h, name), expected(values));
        assert.equal(findCookie(h, name), values[0]);
      }),
      fuzzRuns(2000),
    );
  });

  test('`<name>=` inside another cookie\'s value (no ";" before it) is never a cookie of that name', () => {
    const victim = '0123456789ABCDEF0123456789ABCDEF.a';
    fc.assert(
      fc.property(
        fc.constantFrom(...NAMES),
        fc.constantFrom('other', 'x', '', 'JSESSION', 'SESSIONID', 'sidx', 'Ja'),
        fc.string({ unit: fc.constantFrom(' ', '\t', '"', '=', ',', 'x', 'JSESSIONID', 'a'), maxLength: 5 }),
        (name, other, glue) => {
          fc.pre(other !== name);
          const h = `${other}=${glue}${name}=${victim}`;
          assert.deepEqual(reference(h, name), []);
          assert.equal(findCookies(h, name), undefined);
          assert.equal(findCookies(`${h}; ${name}=mine`, name), 'mine');
        },
      ),
      fuzzRuns(500),
    );
  });

  test('undefined and empty headers', () => {
    assert.equal(findCookies(undefined, 'JSESSIONID'), undefined);
    assert.equal(findCookie('', 'JSESSIONID'), undefined);
    assert.equal(findCookie('JSESSIONID=', 'JSESSIONID'), '');
  });
});
