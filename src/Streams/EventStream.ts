import { Effect, Option, Stream } from "effect"
import { CompletionWatcher } from "../CompletionWatcher.js"
import { InvalidInput, JobNotFound } from "../Domain/Errors.js"
import type { JobEvent } from "../Domain/JobEvent.js"
import { JobIdFromString, Version } from "../Domain/Requests.js"
import { isUuid } from "../Domain/Values.js"
import { decodeField } from "../internal/invalid.js"
import { filterOf } from "../Jobs.js"
import type { StreamPosition } from "../EventLog.js"
import { JobsRepo } from "../Jobs.js"
import type { Sink } from "./Tail.js"
import { StreamTail } from "./Tail.js"

/** An event with the cursor to resume after it (`Last-Event-ID`). */
export interface PositionedEvent {
  readonly cursor: string
  readonly event: JobEvent
}

export interface UserStreamFilter {
  /** Only the jobs of this owner (none: every job, for admins). */
  readonly owner?: string | undefined
  /** Statuses or their aliases (a list, or comma-separated): only events into these statuses. */
  readonly status?: string | ReadonlyArray<string> | undefined
  readonly queue?: string | undefined
  readonly name?: string | undefined
}

/** The cursor of a position in the stream of all events: `<xid8>.<job id>.<version>`. */
export const streamCursor = (p: StreamPosition) => `${p.tx}.${p.jobId}.${p.version}`

export const parseStreamCursor = (cursor: string): Option.Option<StreamPosition> => {
  const [tx, jobId, version, ...rest] = cursor.trim().split(".")
  return rest.length === 0 && tx !== undefined && /^\d{1,20}$/.test(tx) && jobId !== undefined && isUuid(jobId) &&
      version !== undefined && /^\d{1,10}$/.test(version)
    ? Option.some({ tx, jobId, version: Number(version) })
    : Option.none()
}

/** The cursor of a job's event in its own stream: `<job id>.<version>`. */
export const jobCursor = (event: JobEvent) => `${event.jobId}.${event.version}`

const jobIdOf = decodeField(JobIdFromString, "id")
const afterVersionOf = decodeField(Version, "afterVersion")

/**
 * Streams of events for push channels (SSE, RPC): one job's events from a version until its terminal one, and all
 * of a user's events as they happen, each resumable from the cursor of the last event received.
 */
export class EventStream extends Effect.Service<EventStream>()("jobwatch/EventStream", {
  dependencies: [JobsRepo.Default, StreamTail.Default, CompletionWatcher.Default],
  scoped: Effect.gen(function*() {
    const repo = yield* JobsRepo
    const watcher = yield* CompletionWatcher
    const tail = yield* StreamTail

    /**
     * The events of job `id` (of `owner`, when given) after `afterVersion` (or after the version a `cursor` of this
     * stream names), gap-free and in order, ending after the terminal one. Another owner's job is `JobNotFound`.
     */
    const jobEvents = (
      id: string,
      options: { readonly owner?: string | undefined; readonly afterVersion?: number | undefined; readonly cursor?: string | undefined }
    ): Effect.Effect<Stream.Stream<PositionedEvent>, JobNotFound | InvalidInput> =>
      Effect.gen(function*() {
        const jobId = yield* jobIdOf(id)
        let after = options.afterVersion === undefined ? 0 : yield* afterVersionOf(options.afterVersion)
        if (options.cursor !== undefined && options.cursor.trim() !== "") {
          const [cursorJob, version] = options.cursor.trim().split(".")
          if (cursorJob !== jobId || version === undefined || !/^\d{1,10}$/.test(version)) {
            return yield* new InvalidInput({ field: "Last-Event-ID", message: `is not a cursor of job ${jobId}'s events` })
          }
          after = Number(version)
        }
        if (!(yield* repo.exists(jobId, options.owner))) return yield* new JobNotFound({ id: jobId })
        return watcher.watch(jobId, { afterVersion: after }).pipe(
          Stream.map((event): PositionedEvent => ({ cursor: jobCursor(event), event })),
          // found above: a job deleted from the table meanwhile just ends its stream
          Stream.catchAll(() => Stream.empty)
        )
      })

    /**
     * Every event of the jobs matching `filter`, live, after `cursor` (a cursor this stream answered) or, without
     * one, from now on; it never ends by itself. An event committed late by a slow transaction is neither skipped
     * nor repeated (sql/0006): it waits until every older transaction has ended. The stream follows the process's one
     * tail (`StreamTail`), after reading the log itself up to it when it resumes from further back.
     */
    /** The filter and starting position of a user stream, checked. */
    const userStart = (filter: UserStreamFilter, cursor: string | undefined) =>
      Effect.gen(function*() {
        const where = yield* filterOf(filter)
        if (cursor === undefined || cursor.trim() === "") return { where, position: yield* tail.now }
        const parsed = parseStreamCursor(cursor)
        if (Option.isNone(parsed)) {
          return yield* new InvalidInput({ field: "Last-Event-ID", message: "is not a cursor this stream answered" })
        }
        return { where, position: parsed.value }
      })

    const userEvents = (
      filter: UserStreamFilter,
      cursor?: string | undefined
    ): Effect.Effect<Stream.Stream<PositionedEvent>, InvalidInput> =>
      Effect.map(userStart(filter, cursor), ({ position, where }) =>
        tail.follow(position, where).pipe(
          Stream.map((item): PositionedEvent => ({ cursor: streamCursor(item.position), event: item.event }))
        ))

    /**
     * `userEvents` written straight to `sink` by the process's tail as it reads them (`StreamTail.attach`): no
     * fiber or queue per event, for the SSE responses. The answer runs until interrupted.
     */
    const attachUserEvents = (
      filter: UserStreamFilter,
      cursor: string | undefined
    ): Effect.Effect<(sink: Sink) => Effect.Effect<never>, InvalidInput> =>
      Effect.map(userStart(filter, cursor), ({ position, where }) => (sink: Sink) => tail.attach(position, where, sink))

    return { jobEvents, userEvents, attachUserEvents } as const
  })
}) {}
