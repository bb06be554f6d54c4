import { Effect, Either, Option, Stream } from "effect"
import { JobWatchConfig } from "../Config.js"
import { CurrentUser } from "../Domain/Auth.js"
import { InvalidInput } from "../Domain/Errors.js"
import type { JobStatus } from "../Domain/JobStatus.js"
import { Limits } from "../Http/Limits.js"
import { Waits } from "../Http/Waits.js"
import { filterOf, Jobs } from "../Jobs.js"
import { parseStreamCursor, streamCursor } from "../Streams/EventStream.js"
import { sseSink, sseTextResponse } from "../Streams/Http.js"
import type { PositionedItem } from "../Streams/Tail.js"
import { StreamTail } from "../Streams/Tail.js"
import { toString } from "./html.js"
import { jobActions, jobRow, jobSummary, rowOfItem, timelineRow } from "./jobsView.js"
import type { Session } from "./session.js"

/**
 * The pages' one event stream each (`GET /dashboard/live`), fed by the process's stream tail, resumable: a page
 * starts it at the stream position read before the page's own data (nothing between the two is missed), and a
 * reconnecting browser resumes after the last message it got (`Last-Event-ID`). Messages carry server-rendered
 * HTML (escaped as every page is); `dashboard.js` puts each row in place by its id and version.
 */

/** An SSE message whose data is `text` (one `data:` line per line of it). */
const message = (event: string, id: string, text: string) =>
  `id: ${id}\nevent: ${event}\ndata: ${text.split(/\r\n|\r|\n/).join("\ndata: ")}\n\n`

/**
 * An event's message of the jobs list, rendered once however many lists write it (as `sseSink` encodes the API's):
 * the tail writes each event to every matching stream in one synchronous step, and 2,000 open lists rendering its
 * row each blocked the process for as long. By the item the tail hands to all of them, and whether it enters.
 */
const entering = new WeakMap<PositionedItem, string>()
const replacing = new WeakMap<PositionedItem, string>()
const rowMessage = (item: PositionedItem, enter: boolean) => {
  const cache = enter ? entering : replacing
  let text = cache.get(item)
  if (text === undefined) {
    text = message("jobs", streamCursor(item.position), toString(jobRow(rowOfItem(item), { enter })))
    cache.set(item, text)
  }
  return text
}

/**
 * Whether an event brings its job into a list filtered by `statuses`: a new job (no previous status) in a status the
 * list shows, or a job moving from a status the list leaves out into one it shows. A row already listed is replaced.
 */
export const enters = (statuses: ReadonlyArray<JobStatus> | undefined, item: PositionedItem) => {
  const { previousStatus, status, type } = item.event
  if (statuses === undefined) return previousStatus === null
  if (type === "job.progress" || type === "job.cancel_requested") return false
  return statuses.includes(status) && (previousStatus === null || !statuses.includes(previousStatus))
}

/** Each event's row, likewise rendered once, for the batches of streams catching up (5 to 13 µs a row). */
const rows = { enter: new WeakMap<object, string>(), stay: new WeakMap<object, string>() }
const rowHtml = (item: PositionedItem, enter: boolean) => {
  const cache = enter ? rows.enter : rows.stay
  let text = cache.get(item.event)
  if (text === undefined) {
    text = toString(jobRow(rowOfItem(item), { enter }))
    cache.set(item.event, text)
  }
  return text
}

export interface LiveParams {
  readonly status?: string | undefined
  readonly queue?: string | undefined
  readonly name?: string | undefined
  readonly after?: string | undefined
}

export const makeLive = Effect.gen(function*() {
  const tail = yield* StreamTail
  const jobs = yield* Jobs
  const waits = yield* Waits
  const limits = yield* Limits
  const config = yield* JobWatchConfig

  /** Where the stream starts: after the browser's last message, else after the page's position, else now. */
  const startOf = (lastEventId: string | undefined, after: string | undefined) =>
    Effect.gen(function*() {
      const cursor = lastEventId !== undefined && lastEventId.trim() !== "" ? lastEventId : after
      if (cursor === undefined || cursor.trim() === "") return yield* tail.now
      const parsed = parseStreamCursor(cursor)
      if (Option.isNone(parsed)) {
        return yield* new InvalidInput({ field: "after", message: "is not a position this dashboard answered" })
      }
      return parsed.value
    })

  /** Holds one of the user's stream slots for as long as the response runs (429 past the limit). */
  const slot = (session: Session) => Effect.provideService(limits.hold(session.user, "sse"), CurrentUser, session.user)

  /** The jobs list's stream: every event of the user's jobs in the list's queue and name, as rows. */
  const jobsStream = (session: Session, params: LiveParams, lastEventId: string | undefined) =>
    Effect.gen(function*() {
      yield* slot(session)
      const owner = session.user.ownerScope
      const where = yield* filterOf({ queue: params.queue, name: params.name, owner })
      const { statuses } = yield* filterOf({ status: params.status })
      const from = yield* startOf(lastEventId, params.after)
      // live, the tail writes one event at a time; a stream catching up from the log writes its batches as one message
      const render = (items: ReadonlyArray<PositionedItem>) =>
        items.length === 0 ? "" : items.length === 1 ? rowMessage(items[0]!, enters(statuses, items[0]!)) : message(
          "jobs",
          streamCursor(items[items.length - 1]!.position),
          items.map((item) => rowHtml(item, enters(statuses, item))).join("")
        )
      return yield* sseSink((sink) => tail.attach(from, where, sink), config.sseKeepAlive, waits.whenDrained, render)
    })

  /**
   * A job page's stream: each event of the job as a timeline row, with the job's state read again (its result,
   * error and times change with it); a job purged meanwhile sends its last rows only.
   */
  const jobStream = (session: Session, id: string, params: LiveParams, lastEventId: string | undefined) =>
    Effect.gen(function*() {
      yield* slot(session)
      const owner = session.user.ownerScope
      const job = yield* jobs.get(id, { owner })
      const from = yield* startOf(lastEventId, params.after)
      const messages = tail.follow(from, { owner, jobId: job.id }).pipe(
        Stream.mapEffect((item) =>
          Effect.map(Effect.either(jobs.get(job.id, { owner })), (current) =>
            message(
              "job",
              streamCursor(item.position),
              // each part in a template of its own: parsed beside a <tr>, a <section>'s forms lose their content
              `<template>${toString(timelineRow(item.event, true))}</template>` +
                (Either.isRight(current)
                  ? `<template>${toString(jobSummary(current.right, true))}</template><template>${
                    toString(jobActions(session, current.right, true))
                  }</template>`
                  : "")
            ))
        )
      )
      return sseTextResponse(waits.untilDrained(messages), config.sseKeepAlive)
    })

  return { jobsStream, jobStream } as const
})
