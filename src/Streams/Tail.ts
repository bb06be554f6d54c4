import { Cause, Chunk, Duration, Effect, Option, Queue, Stream } from "effect"
import { JobWatchConfig } from "../Config.js"
import type { StreamFilter, StreamPosition, TailItem } from "../EventLog.js"
import { EventsRepo, Listener, parseDoorbell } from "../EventLog.js"

import { makeStreak } from "../internal/retry.js"

/** An event of the stream of all events at its position, with its job's owner, queue and name. */
export type PositionedItem = TailItem

/** Orders two stream positions as the database does: transaction id, then job id (lowercase hex), then version. */
export const comparePositions = (a: StreamPosition, b: StreamPosition): number => {
  if (a.tx !== b.tx) return BigInt(a.tx) < BigInt(b.tx) ? -1 : 1
  if (a.jobId !== b.jobId) return a.jobId < b.jobId ? -1 : 1
  return a.version - b.version
}

/** The SQL filter of `streamAfter`, in memory: owner, event statuses, queue and name. */
export const matches = (filter: StreamFilter) => (item: TailItem): boolean =>
  (filter.owner === undefined || item.owner === filter.owner) &&
  (filter.statuses === undefined || filter.statuses.includes(item.event.status)) &&
  (filter.queue === undefined || item.queue === filter.queue) &&
  (filter.name === undefined || item.name === filter.name) &&
  (filter.jobId === undefined || item.event.jobId === filter.jobId)

/** Reads of the stream of all events made by the tail and by streams catching up to it (tests count them). */
export interface TailStats {
  readonly tailReads: number
  readonly catchUpReads: number
  /** Times a subscriber's buffer overflowed (it then read the log). */
  readonly overflows: number
  readonly subscribers: number
}

const batchSize = 500
/** How often the tail re-reads while a doorbell's events are held back behind an unfinished older transaction. */
const heldBackPoll = Duration.millis(200)
const heldBackPolls = 50
/** Doorbell pairs remembered until seen; beyond this the tail just polls for the bounded while. */
const awaitedLimit = 10_000
/** Events a subscriber may have waiting; past this it drops them and reads the log from its last position. */
export const defaultBufferLimit = 1000

/**
 * Where `attach` writes a stream's events, synchronously as the tail reads them (no fiber or queue per event).
 * `write` answers false when the consumer's buffer is full; `writable` then waits until it has room again.
 */
export interface Sink {
  readonly write: (items: ReadonlyArray<PositionedItem>) => boolean
  readonly writable: Effect.Effect<void>
}

interface Subscriber {
  readonly matches: (item: TailItem) => boolean
  buffer: Array<TailItem>
  overflowed: boolean
  readonly wake: () => void
  /** With a sink: written to at once while `live`; `last` is the last position written. */
  readonly sink?: Sink | undefined
  live: boolean
  last: StreamPosition
}

export interface TailOptions {
  /** Events a subscriber may have waiting before it falls back to reading the log (default 1,000). */
  readonly bufferLimit?: number | undefined
}

/**
 * The process's one reader of the stream of all events (ARCHITECTURE §3): while at least one per-user stream is
 * open, one fiber reads the commit-safe stream after its position on every doorbell, reconnect and refresh tick, and
 * hands each event to every subscriber whose filter it matches. The database's work per doorbell does not depend on
 * the number of streams; with none open it reads nothing. A stream behind the tail (resumed from a cursor, or a slow
 * consumer whose buffer overflowed) reads the log itself up to the tail's position, then follows it.
 */
export const make = (options: TailOptions = {}) =>
  Effect.gen(function*() {
    const events = yield* EventsRepo
    const listener = yield* Listener
    const config = yield* JobWatchConfig
    const bufferLimit = options.bufferLimit ?? defaultBufferLimit

    const subscribers = new Set<Subscriber>()
    /** Where the tail has read up to; `undefined` while no one listens. */
    let position: StreamPosition | undefined
    /** Bumped at every (de)activation: a read begun before one is not delivered. */
    let epoch = 0
    let tailReads = 0
    let catchUpReads = 0
    let overflows = 0

    const wake = yield* Queue.sliding<void>(1)
    const kick = () => Queue.unsafeOffer(wake, undefined)
    // what the doorbells since the last idle read named, job id → version, until the tail has read it
    const awaited = new Map<string, number>()
    let unnamed = false
    let pollsLeft = 0

    const onDoorbell = (payload: string) => {
      if (subscribers.size === 0) return
      const doorbell = parseDoorbell(payload, false)
      if (doorbell.everything) unnamed = true
      else {
        const changes = doorbell.changes
        for (let i = 0; i < changes.length; i += 2) {
          const id = changes[i] as string
          const version = changes[i + 1] as number
          if (awaited.size >= awaitedLimit) unnamed = true
          else if ((awaited.get(id) ?? 0) < version) awaited.set(id, version)
        }
      }
      pollsLeft = heldBackPolls
      kick()
    }
    yield* listener.on("doorbell", onDoorbell)
    yield* listener.on("reconcile", kick)

    const deliver = (batch: ReadonlyArray<TailItem>) => {
      const woken = new Set<Subscriber>()
      for (const item of batch) {
        const rung = awaited.get(item.position.jobId)
        if (rung !== undefined && rung <= item.position.version) awaited.delete(item.position.jobId)
        for (const sub of subscribers) {
          if (sub.overflowed || !sub.matches(item)) continue
          if (sub.live && sub.sink !== undefined) {
            if (comparePositions(item.position, sub.last) <= 0) continue
            sub.last = item.position
            if (!sub.sink.write([item])) {
              // written, but its consumer is behind: the rest it reads from the log once it has room
              sub.live = false
              sub.overflowed = true
              overflows++
              woken.add(sub)
            }
            continue
          }
          if (sub.buffer.length >= bufferLimit) {
            // it reads the log from its last position instead: never unbounded, never a lost event
            sub.overflowed = true
            sub.buffer = []
            overflows++
          } else sub.buffer.push(item)
          woken.add(sub)
        }
      }
      for (const sub of woken) sub.wake()
    }

    /** One read after the tail's position: answers whether more may be waiting at once (a full batch). */
    const readOnce = Effect.gen(function*() {
      const from = position
      const at = epoch
      if (from === undefined) return false
      tailReads++
      const batch = yield* events.tailAfter(from, batchSize)
      if (at !== epoch) return false
      if (batch.length > 0) {
        position = batch[batch.length - 1]!.position
        deliver(batch)
      }
      return batch.length === batchSize
    })

    const loop = Effect.gen(function*() {
      const streak = yield* makeStreak("the stream tail", { cap: config.listenerMaxBackoff })
      while (true) {
        if (position === undefined) {
          awaited.clear()
          unnamed = false
          pollsLeft = 0
          yield* Queue.take(wake)
          continue
        }
        const more = yield* readOnce.pipe(
          Effect.tap(() => streak.succeeded),
          Effect.catchAllCause((cause) =>
            Cause.isInterruptedOnly(cause)
              ? Effect.failCause(cause)
              : Effect.flatMap(streak.failed(cause), (delay) => Effect.as(Effect.sleep(delay), true))
          )
        )
        if (more) continue
        // what rang may be held back behind an older transaction still running (one that writes no event rings no
        // doorbell when it ends): look again every 200 ms while a rung version is unseen, for a bounded while
        if (awaited.size === 0 && !unnamed) pollsLeft = 0
        const poll = pollsLeft > 0 ? Option.some(heldBackPoll) : config.refreshInterval
        const rang = Option.isNone(poll)
          ? yield* Queue.take(wake).pipe(Effect.as(true))
          : Option.isSome(yield* Queue.take(wake).pipe(Effect.timeoutOption(poll.value)))
        if (!rang && pollsLeft > 0 && --pollsLeft === 0) {
          awaited.clear()
          unnamed = false
        }
      }
    }).pipe(Effect.annotateLogs({ module: "StreamTail", fiber: "tail" }))
    yield* Effect.forkScoped(Effect.interruptible(loop))

    const lock = yield* Effect.makeSemaphore(1)
    /** Adds `sub`, starting the tail at the current commit-safe position if no one listened; answers its position. */
    const join = (sub: Subscriber) =>
      lock.withPermits(1)(Effect.gen(function*() {
        if (position === undefined) {
          const now = yield* events.streamNow
          epoch++
          position = now
          kick()
        }
        subscribers.add(sub)
        return position
      }))
    const leave = (sub: Subscriber) =>
      Effect.sync(() => {
        subscribers.delete(sub)
        if (subscribers.size === 0) {
          position = undefined
          epoch++
        }
      })

    /** Where a stream "from now" starts: the tail's position while it runs, else the commit-safe position now. */
    const now: Effect.Effect<StreamPosition> = Effect.suspend(() =>
      position === undefined ? events.streamNow : Effect.succeed(position)
    )

    /**
     * The events matching `filter` after `from`, in stream order, live, never ending by itself: read from the log up
     * to the tail's position, then from the tail, without a gap or a repeat. It registers when it starts.
     */
    const follow = (from: StreamPosition, filter: StreamFilter): Stream.Stream<PositionedItem> =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const signal = yield* Queue.sliding<void>(1)
        const sub: Subscriber = {
          matches: matches(filter),
          buffer: [],
          overflowed: false,
          wake: () => Queue.unsafeOffer(signal, undefined),
          live: false,
          last: from
        }
        // registered first, then caught up: what the tail reads meanwhile waits in the buffer
        const joinedAt = yield* Effect.acquireRelease(join(sub), () => leave(sub))
        let last = from
        let target: StreamPosition | undefined = comparePositions(from, joinedAt) < 0 ? joinedAt : undefined
        return Stream.repeatEffectChunk(Effect.gen(function*() {
          if (sub.overflowed) {
            sub.overflowed = false
            sub.buffer = []
            target = position
          }
          if (target !== undefined && comparePositions(last, target) < 0) {
            catchUpReads++
            const batch = yield* events.streamAfter(last, filter, batchSize, target)
            if (batch.length < batchSize) target = undefined
            if (batch.length === 0) return Chunk.empty<PositionedItem>()
            last = batch[batch.length - 1]!.position
            return Chunk.unsafeFromArray<PositionedItem>(batch)
          }
          target = undefined
          if (sub.buffer.length > 0) {
            const items = sub.buffer
            sub.buffer = []
            const fresh = items.filter((item) => comparePositions(item.position, last) > 0)
            if (fresh.length > 0) last = fresh[fresh.length - 1]!.position
            return Chunk.unsafeFromArray<PositionedItem>(fresh)
          }
          yield* Queue.take(signal)
          return Chunk.empty<PositionedItem>()
        }))
      }))

    /**
     * `follow` for a consumer that takes events synchronously (an SSE response): the events matching `filter`
     * after `from` are written to `sink`, from the log until it reaches the tail, then by the tail itself as it
     * reads them; a sink that reports itself full is caught up from the log once it has room. Runs until interrupted.
     */
    const attach = (from: StreamPosition, filter: StreamFilter, sink: Sink): Effect.Effect<never> =>
      Effect.scoped(Effect.gen(function*() {
        const signal = yield* Queue.sliding<void>(1)
        const sub: Subscriber = {
          matches: matches(filter),
          buffer: [],
          overflowed: false,
          wake: () => Queue.unsafeOffer(signal, undefined),
          sink,
          live: false,
          last: from
        }
        const joinedAt = yield* Effect.acquireRelease(join(sub), () => leave(sub))
        let target: StreamPosition | undefined = comparePositions(from, joinedAt) < 0 ? joinedAt : undefined
        const write = (items: ReadonlyArray<PositionedItem>) =>
          items.length === 0 || sink.write(items) ? Effect.void : sink.writable
        while (true) {
          if (sub.overflowed) {
            sub.overflowed = false
            sub.buffer = []
            target = position
            yield* sink.writable
          }
          if (target !== undefined && comparePositions(sub.last, target) < 0) {
            catchUpReads++
            const batch = yield* events.streamAfter(sub.last, filter, batchSize, target)
            if (batch.length < batchSize) target = undefined
            if (batch.length > 0) sub.last = batch[batch.length - 1]!.position
            yield* write(batch)
            continue
          }
          target = undefined
          if (sub.buffer.length > 0) {
            const last = sub.last
            const fresh = sub.buffer.filter((item) => comparePositions(item.position, last) > 0)
            sub.buffer = []
            if (fresh.length > 0) sub.last = fresh[fresh.length - 1]!.position
            yield* write(fresh)
            continue
          }
          // caught up, in the same step as the buffer was found empty: the tail writes from here on
          sub.live = true
          yield* Queue.take(signal)
        }
      }))

    const stats: Effect.Effect<TailStats> = Effect.sync(() => ({
      tailReads,
      catchUpReads,
      overflows,
      subscribers: subscribers.size
    }))

    return { now, follow, attach, stats } as const
  })

/** The process's stream tail (see `make`), with its default buffers. */
export class StreamTail extends Effect.Service<StreamTail>()("jobwatch/StreamTail", {
  dependencies: [EventsRepo.Default, Listener.Default],
  scoped: make()
}) {}
