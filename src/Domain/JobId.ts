import { Schema } from "effect"
import { v7 as uuidv7 } from "uuid"

/** A job's id: a UUID the application generates (UUIDv7, so ids sort by creation time). */
export const JobId = Schema.UUID.pipe(Schema.brand("JobId")).annotations({
  identifier: "JobId",
  description: "A job id (UUIDv7)"
})
export type JobId = typeof JobId.Type

// Web Crypto's `getRandomValues` (Node 20's global `crypto`, and every browser's): nothing here needs Node.
// uuid's v7 asks the system for 16 random bytes per id (about 3 µs); a pool refilled 4 KiB at a time makes a
// 1,000-job batch's ids 5× cheaper, fresh bytes for every id all the same. Given its own bytes, uuid's v7 keeps
// no monotonic state, so this keeps it as uuid does (RFC 9562 method 1: a counter seeded at each new
// millisecond): ids made by this process sort in the order they were made, the FIFO order of claims.
const pool = new Uint8Array(4096)
let offset = pool.length
let lastMsecs = Number.NEGATIVE_INFINITY
let seq = 0

/** A new UUIDv7, strictly increasing within this process. */
const makeUuidV7 = (): string => {
  if (offset + 16 > pool.length) {
    globalThis.crypto.getRandomValues(pool)
    offset = 0
  }
  const random = pool.subarray(offset, offset + 16)
  offset += 16
  const now = Date.now()
  if (now > lastMsecs) {
    seq = ((random[6]! & 0x7f) << 24) | (random[7]! << 16) | (random[8]! << 8) | random[9]!
    lastMsecs = now
  } else {
    seq = (seq + 1) | 0
    if (seq === 0) lastMsecs++
  }
  return uuidv7({ random, msecs: lastMsecs, seq })
}

/** A new, time-ordered job id (UUIDv7), strictly increasing within this process. */
export const makeJobId = (): JobId => JobId.make(makeUuidV7(), { disableValidation: true })

/** An event's id: unique per job event, the SSE `id` and the webhook `webhook-id`. */
export const EventId = Schema.UUID.pipe(Schema.brand("EventId")).annotations({ identifier: "EventId" })
export type EventId = typeof EventId.Type

/** A new event id (UUIDv7), for events written in bulk (the database makes the others). */
export const makeEventId = (): EventId => EventId.make(makeUuidV7(), { disableValidation: true })
