/**
 * Property-based fuzzing of everything that reads network bytes: the frame reader, the sealed
 * record reader (FrameSink with a key), fragment reassembly and the value codec. Arbitrary and
 * mutated inputs throw nothing but the documented refusals (FrameError / AuthFailure /
 * FragmentRefused / CodecError), finish promptly, respect their memory bounds, and valid inputs
 * round-trip. Short in `npm test`; `CLOWDER_FUZZ_RUNS=100000` for a long run (see helpers/fuzz.ts).
 */
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FragmentRefused, Reassembler } from '../../src/channel/interceptors/reassembly.js';
import { DECODE_BUDGET, decode, encode } from '../../src/codec/index.js';
import { CodecError, ErrorCode, FrameError } from '../../src/core/errors.js';
import { FrameSink } from '../../src/transport/frame-sink.js';
import { AuthFailure } from '../../src/transport/record-reader.js';
import { createTransportStats } from '../../src/transport/stats.js';
import { RecordOpener, RecordSealer, TAG_BYTES } from '../../src/wire/auth.js';
import { encodeFrame, FrameReader, FrameType, HEADER_BYTES, writeHeader } from '../../src/wire/frame.js';
import { fuzzRuns } from '../helpers/fuzz.js';

/**
 * A decode or parse of one input must finish within this: a hang (a loop that never ends, or work
 * out of all proportion to the input) is a failure, not a test timeout. Generous so that a loaded
 * machine never trips it; how fast decoding is belongs to bench/, not here.
 */
const PROMPT_MS = 10_000;

function timed<T>(f: () => T): T {
  const t0 = performance.now();
  try {
    return f();
  } finally {
    const ms = performance.now() - t0;
    assert.ok(ms < PROMPT_MS, `took ${ms.toFixed(0)} ms`);
  }
}

/** Splits `bytes` at the given cut points (any numbers; taken modulo the length). */
function chunks(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    if (p > prev) out.push(bytes.subarray(prev, p));
    prev = Math.max(prev, p);
  }
  out.push(bytes.subarray(prev));
  return out;
}

/** Applies byte-level mutations: overwrite, insert, delete. */
const mutation = fc.tuple(fc.constantFrom('set', 'insert', 'delete'), fc.nat(), fc.integer({ min: 0, max: 255 }));
function mutate(bytes: Buffer, ms: [string, number, number][]): Buffer {
  let b = Buffer.from(bytes);
  for (const [op, at, v] of ms) {
    const i = b.length === 0 ? 0 : at % b.length;
    if (op === 'set' && b.length > 0) b[i] = v;
    else if (op === 'insert') b = Buffer.concat([b.subarray(0, i), Buffer.from([v]), b.subarray(i)]);
    else if (op === 'delete' && b.length > 0) b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
  }
  return b;
}

// ---- frame reader ----------------------------------------------------------------------------

const frameArb = fc.record({
  type: fc.integer({ min: 1, max: 8 }),
  flags: fc.integer({ min: 0, max: 0xffff }),
  body: fc.uint8Array({ maxLength: 3000 }),
});

describe('fuzz: frame reader', () => {
  it('valid frames round-trip however the stream is cut, with and without buffer reuse', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.boolean(),
        (frames, cuts, reuse) => {
          const stream = Buffer.concat(frames.map((f) => encodeFrame(f.type as FrameType, f.flags, f.body)));
          const got: { type: number; flags: number; body: Buffer }[] = [];
          const r = new FrameReader(4096, (type, flags, body) => got.push({ type, flags, body: Buffer.from(body) }), {
            reuse,
          });
          for (const c of chunks(stream, cuts)) r.push(c);
          assert.equal(got.length, frames.length);
          for (let i = 0; i < frames.length; i++) {
            assert.equal(got[i]!.type, frames[i]!.type);
            assert.equal(got[i]!.flags, frames[i]!.flags);
            assert.ok(got[i]!.body.equals(Buffer.from(frames[i]!.body)));
          }
          assert.equal(r.midFrame, false);
        },
      ),
      fuzzRuns(),
    );
  });

  it('large frames (grown as bytes arrive) round-trip', () => {
    fc.assert(
      fc.property(fc.integer({ min: 200_000, max: 1_200_000 }), fc.array(fc.nat(), { maxLength: 30 }), (size, cuts) => {
        const body = randomBytes(size);
        const stream = encodeFrame(FrameType.DATA, 3, body);
        let got: Buffer | undefined;
        const r = new FrameReader(2 * 1024 * 1024, (_t, _f, b) => {
          got = Buffer.from(b);
        });
        for (const c of chunks(stream, cuts)) r.push(c);
        assert.ok(got?.equals(body));
      }),
      fuzzRuns(20),
    );
  });

  it('arbitrary and mutated streams throw only FrameError', () => {
    const valid = fc
      .array(frameArb, { maxLength: 6 })
      .map((fs) => Buffer.concat(fs.map((f) => encodeFrame(f.type as FrameType, f.flags, f.body))));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b)),
          fc.tuple(valid, fc.array(mutation, { maxLength: 6 })).map(([b, ms]) => mutate(b, ms)),
        ),
        fc.array(fc.nat(), { maxLength: 10 }),
        (stream, cuts) => {
          const r = new FrameReader(4096, () => {});
          timed(() => {
            try {
              for (const c of chunks(stream, cuts)) r.push(c);
            } catch (err) {
              assert.ok(err instanceof FrameError, `unexpected ${(err as Error).stack}`);
            }
          });
        },
      ),
      fuzzRuns(),
    );
  });
});

// ---- sealed records ---------------------------------------------------------------------------

const KEY = randomBytes(32);

function sealAll(stream: Buffer, encrypt: boolean, recordBytes: number): Buffer {
  const sealer = new RecordSealer(KEY, encrypt);
  const out: Buffer[] = [];
  for (let off = 0; off < stream.length; off += recordBytes) {
    const data = stream.subarray(off, Math.min(stream.length, off + recordBytes));
    const header = Buffer.alloc(HEADER_BYTES);
    writeHeader(header, 0, FrameType.SEALED, 0, data.length + TAG_BYTES);
    out.push(Buffer.concat([header, ...sealer.seal([data], header)]));
  }
  return Buffer.concat(out);
}

describe('fuzz: sealed record reader', () => {
  const inner = fc.array(
    fc.record({
      type: fc.constantFrom(FrameType.DATA, FrameType.ACK, FrameType.PING),
      body: fc.uint8Array({ maxLength: 1500 }),
    }),
    { minLength: 1, maxLength: 8 },
  );

  it('sealed frames round-trip; any mutation throws only AuthFailure/FrameError and delivers nothing forged', () => {
    fc.assert(
      fc.property(
        inner,
        fc.boolean(),
        fc.integer({ min: 64, max: 2048 }),
        fc.array(mutation, { maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (frames, encrypt, recordBytes, ms, cuts) => {
          const stream = Buffer.concat(frames.map((f) => encodeFrame(f.type, 0, f.body)));
          const sealed = sealAll(stream, encrypt, recordBytes);
          const wire = mutate(sealed, ms);
          const got: Buffer[] = [];
          const s = new FrameSink(
            1 << 20,
            (type, flags, body) => got.push(encodeFrame(type, flags, Buffer.from(body))),
            createTransportStats(),
          );
          s.setOpener(new RecordOpener(KEY, encrypt));
          let failed = false;
          timed(() => {
            try {
              // The sink decrypts in place: give it copies.
              for (const c of chunks(wire, cuts)) s.push(Buffer.from(c));
            } catch (err) {
              failed = true;
              assert.ok(err instanceof AuthFailure || err instanceof FrameError, `unexpected ${(err as Error).stack}`);
            }
          });
          // Whatever was delivered is a prefix of what was sealed (nothing forged gets through).
          const delivered = Buffer.concat(got);
          assert.ok(stream.subarray(0, delivered.length).equals(delivered), 'delivered bytes were sealed by the key');
          if (wire.equals(sealed)) {
            assert.equal(failed, false);
            assert.ok(delivered.equals(stream));
          }
        },
      ),
      fuzzRuns(),
    );
  });
});

// ---- reassembly ---------------------------------------------------------------------------------

const LIMITS = { maxMessageBytes: 64 * 1024, maxOpenPerMember: 3, maxOpenMessages: 5, maxOpenBytes: 100 * 1024 };

function fragmentOf(id: number, index: number, count: number, data: Buffer): Buffer {
  const p = Buffer.alloc(12 + data.length);
  p.writeUInt32BE(id >>> 0, 0);
  p.writeUInt32BE(index >>> 0, 4);
  p.writeUInt32BE(count >>> 0, 8);
  data.copy(p, 12);
  return p;
}

describe('fuzz: fragment reassembly', () => {
  const op = fc.oneof(
    {
      weight: 8,
      arbitrary: fc.record({
        kind: fc.constant('add' as const),
        sender: fc.constantFrom('a', 'b', 'c'),
        id: fc.integer({ min: 0, max: 6 }),
        index: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.nat()),
        count: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.nat()),
        size: fc.integer({ min: 0, max: 20_000 }),
        last: fc.boolean(),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('raw' as const),
        sender: fc.constantFrom('a', 'b'),
        bytes: fc.uint8Array({ maxLength: 40 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('forget' as const), sender: fc.constantFrom('a', 'b', 'c') }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('expire' as const), after: fc.nat({ max: 2000 }) }) },
  );

  it('arbitrary fragments throw only FragmentRefused and never exceed the limits', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const r = new Reassembler(LIMITS);
        let now = 0;
        for (const o of ops) {
          try {
            if (o.kind === 'add')
              r.add(o.sender, fragmentOf(o.id, o.index, o.count, Buffer.alloc(o.size)), now, o.last);
            else if (o.kind === 'raw') r.add(o.sender, Buffer.from(o.bytes), now);
            else if (o.kind === 'forget') r.forget(o.sender);
            else r.expire((now += o.after), 1000, () => {});
          } catch (err) {
            assert.ok(err instanceof FragmentRefused, `unexpected ${(err as Error).stack}`);
          }
          assert.ok(r.openMessages <= LIMITS.maxOpenMessages);
          assert.ok(r.openBytes <= LIMITS.maxOpenBytes);
          assert.ok(r.openBytes >= 0 && r.openMessages >= 0);
        }
        for (const s of ['a', 'b', 'c']) r.forget(s);
        assert.equal(r.openMessages, 0);
        assert.equal(r.openBytes, 0, 'every byte accounted for');
      }),
      fuzzRuns(),
    );
  });

  it('messages fragmented in order, interleaved between senders, reassemble intact', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            sender: fc.constantFrom('a', 'b', 'c'),
            size: fc.integer({ min: 2, max: 30_000 }),
            part: fc.integer({ min: 1024, max: 8192 }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        fc.array(fc.nat(), { maxLength: 200 }),
        (msgs, order) => {
          const r = new Reassembler(LIMITS);
          // One open message per sender at a time (one connection delivers them in order).
          const queues = new Map<string, { id: number; data: Buffer; parts: Buffer[] }[]>();
          msgs.forEach((m, id) => {
            const data = randomBytes(m.size);
            const count = Math.max(2, Math.ceil(m.size / m.part));
            const size = Math.ceil(m.size / count);
            const parts = Array.from({ length: count }, (_, i) => data.subarray(i * size, (i + 1) * size));
            const q = queues.get(m.sender) ?? [];
            q.push({ id, data, parts });
            queues.set(m.sender, q);
          });
          const done: Buffer[] = [];
          const senders = [...queues.keys()];
          let k = 0;
          while (senders.some((s) => (queues.get(s)?.length ?? 0) > 0)) {
            const live = senders.filter((s) => (queues.get(s)?.length ?? 0) > 0);
            const s = live[(order[k++ % Math.max(1, order.length)] ?? 0) % live.length]!;
            const q = queues.get(s)!;
            const m = q[0]!;
            const index = m.parts.length - m.parts.filter(Boolean).length;
            const count = m.parts.length;
            const whole = r.add(s, fragmentOf(m.id, index, count, m.parts[index]!), 0, index === count - 1);
            m.parts[index] = undefined as unknown as Buffer;
            if (index === count - 1) {
              assert.ok(whole?.equals(m.data), 'reassembled intact');
              done.push(whole!);
              q.shift();
            } else assert.equal(whole, undefined);
          }
          assert.equal(done.length, msgs.length);
          assert.equal(r.openBytes, 0);
        },
      ),
      fuzzRuns(),
    );
  });
});

// ---- value codec --------------------------------------------------------------------------------

const { value: valueArb } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, undefined, true, false),
    fc.integer(),
    fc.double(),
    fc.string({ maxLength: 20 }),
    fc.bigInt(),
    fc.date({ noInvalidDate: false }),
    fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ maxLength: 6 }), tie('value'), { maxKeys: 5 }),
    fc.array(fc.tuple(tie('value'), tie('value')), { maxLength: 4 }).map((es) => new Map(es)),
    fc.array(tie('value'), { maxLength: 4 }).map((vs) => new Set(vs)),
  ),
}));

/**
 * Heap a decoded value takes, estimated independently of the decoder from V8's sizes measured on
 * Node 20–22 (64-bit): a slot 8; float 24; string 24 + length; bigint 32; Date 104; Buffer 104 +
 * length; array 40; object 64 + 24 per property; Map 192 + 32 per entry; Set 160 + 24 per entry.
 */
function heapOf(v: unknown): number {
  if (v === null || v === undefined || typeof v === 'boolean') return 0;
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) < 2 ** 31 ? 0 : 24;
  if (typeof v === 'string') return 24 + v.length;
  if (typeof v === 'bigint') return 32;
  if (v instanceof Date) return 104;
  if (Buffer.isBuffer(v)) return 104 + v.length;
  if (Array.isArray(v)) return 40 + v.reduce((n: number, x) => n + 8 + heapOf(x), 0);
  if (v instanceof Map) {
    let n = 192;
    for (const [k, x] of v) n += 32 + heapOf(k) + heapOf(x);
    return n;
  }
  if (v instanceof Set) {
    let n = 160;
    for (const x of v) n += 24 + heapOf(x);
    return n;
  }
  let n = 64;
  for (const [k, x] of Object.entries(v as object)) n += 24 + k.length + heapOf(x);
  return n;
}

function budgetOf(bytes: Buffer): number {
  return bytes.length * DECODE_BUDGET.perByte + DECODE_BUDGET.base;
}

function decodeOrRefuse(bytes: Buffer): unknown {
  return timed(() => {
    try {
      const v = decode(bytes);
      // Strings are estimated by length (one-byte); object keys are counted by length here only.
      assert.ok(heapOf(v) <= budgetOf(bytes) * 1.25, 'within the allocation budget');
      return v;
    } catch (err) {
      assert.ok(err instanceof CodecError && err.code === ErrorCode.CODEC_DECODE, `unexpected ${(err as Error).stack}`);
      return err;
    }
  });
}

describe('fuzz: value codec', () => {
  it('valid values round-trip', () => {
    fc.assert(
      fc.property(valueArb, (v) => {
        const bytes = encode(v);
        const back = decode(bytes);
        assert.ok(encode(back).equals(bytes));
      }),
      fuzzRuns(),
    );
  });

  it('arbitrary and mutated encodings throw only CodecError and stay within the budget', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from([1, ...b])),
          fc
            .tuple(valueArb, fc.array(mutation, { minLength: 1, maxLength: 4 }))
            .map(([v, ms]) => mutate(encode(v), ms)),
        ),
        (bytes) => {
          decodeOrRefuse(bytes);
        },
      ),
      fuzzRuns(),
    );
  });

  it('repeated cheap shapes (bombs) are refused past the budget, never decoded past it', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(
          [0x0d, 0x00],
          [0x0e, 0x00],
          [0x0a, 0x00],
          [0x0c, 0x00],
          [0x0b, 0x00],
          [0x09, 0, 0, 0, 0, 0, 0, 0, 0],
          [0x01],
        ),
        fc.integer({ min: 1, max: 200_000 }),
        (item, n) => {
          const head = [0x01, 0x0b];
          let c = n;
          while (c >= 0x80) {
            head.push((c & 0x7f) | 0x80);
            c = Math.floor(c / 0x80);
          }
          head.push(c);
          const bytes = Buffer.concat([Buffer.from(head), Buffer.alloc(n * item.length)]);
          for (let i = 0; i < n; i++) Buffer.from(item).copy(bytes, head.length + i * item.length);
          decodeOrRefuse(bytes);
        },
      ),
      fuzzRuns(30),
    );
  });
});
