import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeenNonces } from '../../../src/transport/seen-nonces.js';

const nonce = (i: number) => {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(i, 0);
  return b;
};

describe('SeenNonces', () => {
  it('a nonce seen within the window is a replay; a new one is not', () => {
    const s = new SeenNonces(1000, 100);
    assert.equal(s.check(nonce(1), 0), false);
    assert.equal(s.check(nonce(2), 10), false);
    assert.equal(s.check(nonce(1), 999), true);
  });

  it('entries older than the window are forgotten', () => {
    const s = new SeenNonces(1000, 100);
    s.check(nonce(1), 0);
    s.check(nonce(2), 500);
    assert.equal(s.check(nonce(3), 1200), false);
    assert.equal(s.size, 2, 'the first entry aged out');
    assert.equal(s.check(nonce(1), 1300), false, 'too old to be remembered (its timestamp is refused anyway)');
  });

  it('never holds more than its size: the oldest go first', () => {
    const s = new SeenNonces(60_000, 10);
    for (let i = 0; i < 1000; i++) s.check(nonce(i), i);
    assert.ok(s.size <= 10);
    assert.equal(s.check(nonce(999), 1000), true, 'the newest are kept');
  });
});
