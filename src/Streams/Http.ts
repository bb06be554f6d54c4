import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import type { Duration } from "effect"
import { Effect, Schema, Stream } from "effect"
import { Api } from "../Api.js"
import { JobWatchConfig } from "../Config.js"
import { JobEvent, sseEventName } from "../Domain/JobEvent.js"
import { holdSlot, Limits } from "../Http/Limits.js"
import { asOwner, Waits } from "../Http/Waits.js"
import type { PositionedEvent } from "./EventStream.js"
import { EventStream } from "./EventStream.js"

const encodeEvent = Schema.encodeSync(JobEvent)

/**
 * A `text/event-stream` of job events: each an SSE message (`id:` its cursor, `event:` its envelope type, `data:`
 * the envelope as JSON), with a comment every `keepAlive` (and one at once, so that clients see the stream open). It
 * ends when `events` ends; a client that goes away interrupts it.
 */
export const sseResponse = (events: Stream.Stream<PositionedEvent>, keepAlive: Duration.Duration) => {
  const messages = events.pipe(
    Stream.map(({ cursor, event }) =>
      `id: ${cursor}\nevent: ${sseEventName(event)}\ndata: ${JSON.stringify(encodeEvent(event))}\n\n`
    )
  )
  const comments = Stream.tick(keepAlive).pipe(Stream.map(() => ": keep-alive\n\n"))
  return HttpServerResponse.stream(
    // a dropped client reconnects after a second, with Last-Event-ID
    Stream.concat(Stream.make("retry: 1000\n\n"), Stream.merge(messages, comments, { haltStrategy: "left" })).pipe(
      Stream.encodeText
    ),
    {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
    }
  )
}

/** The SSE endpoints: a job's events until it ends, or all of the caller's, each holding one of its stream slots. */
export const EventsLive = HttpApiBuilder.group(Api, "events", (handlers) =>
  Effect.gen(function*() {
    const streams = yield* EventStream
    const waits = yield* Waits
    const config = yield* JobWatchConfig
    const slot = holdSlot(yield* Limits)
    const respond = Effect.map((events: Stream.Stream<PositionedEvent>) =>
      sseResponse(waits.untilDrained(events), config.sseKeepAlive)
    )
    return handlers
      .handle("jobEvents", ({ headers, path, urlParams }) =>
        Effect.zipRight(
          slot,
          asOwner(({ owner }) =>
            streams.jobEvents(path.id, {
              owner,
              afterVersion: urlParams.afterVersion,
              cursor: headers["last-event-id"]
            })
          ).pipe(respond)
        ))
      .handle("userEvents", ({ headers, urlParams }) =>
        Effect.zipRight(
          slot,
          asOwner(({ owner }) => streams.userEvents({ ...urlParams, owner }, headers["last-event-id"])).pipe(respond)
        ))
  }))
