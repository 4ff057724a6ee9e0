/**
 * Session replication messages. Each is an array encoded with the value codec, starting with the
 * type and the context name; attribute values travel as the codec bytes the writer produced, so a
 * receiving node stores them without decoding (it decodes only what a request reads).
 *
 * Append only: a type, once shipped, keeps its number and layout.
 */
import type { Nested } from '../codec/value-codec.js';

export const Msg = {
  /** [t, ctx, id, creationTime, maxInactive, version, names[], values(bytes)[]] — first replication of a new session */
  CREATED: 1,
  /** [t, ctx, id, base, version, names[], values[], removed[], maxInactive | null] — changed attributes only (null: timeout unchanged) */
  DELTA: 2,
  /**
   * [t, ctx, id, accessedAt, readOnly?] — a request read the session without changing it
   * (rate-limited); the sender served it, so owns it now, unless readOnly is true (a readOnlyFilter
   * path, which leaves the session with its owner)
   */
  ACCESSED: 3,
  /** [t, ctx, id, reason] — invalidated or expired on the sender */
  EXPIRED: 4,
  /** [t, ctx, oldId, newId] — changeId() / regenerate({ keep: true }): same data, new id */
  ID_CHANGED: 5,
  /** [t, ctx, requestId] — a starting node asks for every session of ctx */
  STATE_REQUEST: 6,
  /** [t, ctx, requestId, seq, records[]] — part of the answer; acknowledged after it was applied */
  STATE_CHUNK: 7,
  /** [t, ctx, requestId, count, tombstoneIds[]] — the answer is complete; ids invalidated on the sender */
  STATE_COMPLETE: 8,
  /** [t, ctx, requestId] — the asked node does not serve ctx (Tomcat's NOCONTEXTMANAGER) */
  STATE_NONE: 9,
  /** [t, ctx, id] — a delta arrived for a session this node never saw whole: send all of it */
  SESSION_REQUEST: 10,
  /** [t, ctx, record] — the answer to SESSION_REQUEST (taken only from the member asked) */
  SESSION_DATA: 11,
  /**
   * [t, ctx, id, requestId (random 48-bit integer)] — a node is about to serve a request for the
   * session: may it own it?
   */
  ACQUIRE: 12,
  /**
   * [t, ctx, id, requestId, ownerId, granted] — granted: the asker owns it now (every change was
   * sent before); else ask ownerId. Taken only from the member asked, for its requestId and id.
   */
  GRANT: 13,
  /**
   * [t, ctx, messages[]] — the CREATED, DELTA and ACCESSED messages of ctx that one event-loop turn
   * produced (asynchronous mode), in order: one frame instead of one per request
   */
  BATCH: 14,
  /**
   * [t, ctx, id, fencedOwner, fence, record] — the sender took the session over from fencedOwner,
   * a live member that did not hand it over in time. fence is the version the sender moved the
   * session to (record's version): a write of fencedOwner whose base is below it is stale, refused
   * everywhere; record is the sender's copy at the take-over, which every node reverts to for
   * whatever is older than the fence.
   */
  TAKEN: 15,
  /**
   * [t, ctx] — the sender found this node back after a silence (it had dropped it, or heard
   * nothing from it for dropTime): each may have missed the other's changes. The receiver merges
   * the sender's sessions (a STATE_REQUEST to it), as the sender does with the receiver's.
   */
  MERGE_REQUEST: 16,
  /**
   * BackupManager (backup-messages.ts). [t, ctx, id, requestId, mode?, hinted?] — a node about to
   * serve a session it does not hold asks the members serving ctx for it (mode true: only to read
   * it; "take": the owner hands it over in its answer, the ownership protocol in the same round
   * trip; null with hinted). hinted (true): the receiver was named as the owner by another member
   * (a taker answers once its own take ended)
   */
  FETCH: 17,
  /**
   * [t, ctx, requestId, record | null, granted? | movedTo?] — the answer to FETCH: this member's
   * copy, or null (none here); granted (true, with a record; only to a "take"): the sender owned
   * the session and handed it over with this record, every change of its included (the asker owns
   * it now); movedTo (a member id, with null): where the sender saw the session go
   */
  FETCHED: 18,
  /** [t, ctx, records[]] — hold these sessions as backup copies (acknowledged once applied) */
  COPIES: 19,
  /**
   * [t, ctx, ids[], versions[]] — the sender, acting for these sessions (at these versions), placed
   * their copies elsewhere: drop yours
   */
  RELEASE: 20,
  /** [t, ctx] — the sender has sent this node every copy the placement gives it (its share) */
  SHARE_SENT: 21,
  /**
   * BackupManager (backup-sync-messages.ts). [t, ctx, purpose, ids[], versions[], owners[]] — the
   * sessions the sender holds, at these versions, served by these owners. purpose 0, a rejoin (a
   * member back after a silence): the receiver answers with its own copies of those it holds too
   * (MERGE_COPIES) and with the ids it invalidated; 1, a repair (the sender serves them, the
   * receiver is their backup): the receiver answers WANTED with the ids it lacks or holds older
   */
  HOLDING: 22,
  /**
   * [t, ctx, records[], ended[]] — copies to merge by stamps after a silence (acknowledged once
   * applied; at equal versions the greater owner id serves), and ids the sender invalidated
   */
  MERGE_COPIES: 23,
  /** [t, ctx, ids[]] — the answer to a repair HOLDING: send me these copies */
  WANTED: 24,
} as const;
export type Msg = (typeof Msg)[keyof typeof Msg];
/** One more than the highest message type: the length of per-type tables. */
export const MSG_TYPES: number = Math.max(...Object.values(Msg)) + 1;

/** Message names for counters and logs. */
export const MSG_NAMES: Record<number, string> = {
  1: 'created',
  2: 'delta',
  3: 'accessed',
  4: 'expired',
  5: 'idChanged',
  6: 'stateRequest',
  7: 'stateChunk',
  8: 'stateComplete',
  9: 'stateNone',
  10: 'sessionRequest',
  11: 'sessionData',
  12: 'acquire',
  13: 'grant',
  14: 'batch',
  15: 'taken',
  16: 'mergeRequest',
  17: 'fetch',
  18: 'fetched',
  19: 'copies',
  20: 'release',
  21: 'shareSent',
  22: 'holding',
  23: 'mergeCopies',
  24: 'wanted',
};

/**
 * A whole session in a state-transfer chunk:
 * [id, creationTime, lastAccessedTime, maxInactive, version, names[], values[] (null = removed), stampVersions[], stampWriters[], ownerId, stampBases[]?]
 * stampBases (appended later; absent from older senders): the session version each write had
 * seen, which tells a merge whether two writes to one attribute on two nodes were concurrent.
 */
export type SessionRecord = [
  string,
  number,
  number,
  number,
  number,
  string[],
  /** Encodings; on the sending side a scalar may still be its value ({@link Nested}), written in place. */
  (Uint8Array | Nested | null)[],
  number[],
  string[],
  string,
  number[]?,
];
