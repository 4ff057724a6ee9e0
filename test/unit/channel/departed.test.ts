// DepartedMembers: the ids a channel removed, so that one added again is known as a rejoin.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DepartedMembers } from '../../../src/channel/departed.js';

describe('DepartedMembers', () => {
  it('an id removed and added again is a rejoin, once; an id never removed is not', () => {
    const d = new DepartedMembers();
    assert.equal(d.back('a'), false);
    d.gone('a');
    assert.equal(d.back('a'), true);
    assert.equal(d.back('a'), false, 'forgotten once back');
  });

  it('bounded: past the limit the oldest removals are forgotten first', () => {
    const d = new DepartedMembers(3);
    for (const id of ['a', 'b', 'c']) d.gone(id);
    d.gone('a'); // removed again: now the newest
    d.gone('d');
    assert.equal(d.size, 3);
    assert.equal(d.back('b'), false, 'the oldest removal went');
    assert.equal(d.back('a'), true);
    assert.equal(d.back('c'), true);
    assert.equal(d.back('d'), true);
  });
});
