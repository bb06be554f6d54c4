import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { Duration, Effect, FiberId, Schema, Stream } from "effect"
import { Api } from "../Api.js"
import { JobWatchConfig } from "../Config.js"
import { JobEvent, sseEventName } from "../Domain/JobEvent.js"
import { holdSlot, Limits } from "../Http/Limits.js"
import { asOwner, Waits } from "../Http/Waits.js"
import { Readable } from "node:stream"
import type { PositionedEvent } from "./EventStream.js"
import { EventStream, streamCursor } from "./EventStream.js"
import type { Trigger } from "../internal/firstOf.js"
import type { PositionedItem, Sink } from "./Tail.js"

const encodeEvent = Schema.encodeSync(JobEvent)

/**
 * A `text/event-stream` of job events: each an SSE message (`id:` its cursor, `event:` its envelope type, `data:`
 * the envelope as JSON), with a comment every `keepAlive` (and one at once, so that clients see the stream open). It
 * ends when `events` ends; a client that goes away interrupts it.
 */
export const sseResponse = (events: Stream.Stream<PositionedEvent>, keepAlive: Duration.Duration) =>
  sseTextResponse(
    events.pipe(
      Stream.map(({ cursor, event }) =>
        `id: ${cursor}\nevent: ${sseEventName(event)}\ndata: ${JSON.stringify(encodeEvent(event))}\n\n`
      )
    ),
    keepAlive
  )

/** A `text/event-stream` of SSE messages already written, with the keep-alive comments of `sseResponse`. */
export const sseTextResponse = (messages: Stream.Stream<string>, keepAlive: Duration.Duration) => {
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

/** Each event's SSE message, built once however many streams write it. */
const messages = new WeakMap<object, string>()
const messageOf = (item: PositionedItem) => {
  let text = messages.get(item.event)
  if (text === undefined) {
    text = `id: ${streamCursor(item.position)}\nevent: ${sseEventName(item.event)}\ndata: ${
      JSON.stringify(encodeEvent(item.event))
    }\n\n`
    messages.set(item.event, text)
  }
  return text
}

/** What a user stream may have written and not yet sent before it counts as behind (then it reads the log). */
const highWaterMark = 64 * 1024

/**
 * A user stream's SSE response, written by the process's stream tail: a Node `Readable` the server pipes to the
 * socket, fed synchronously (no Effect stream, fiber or queue per event: 2,000 streams cost one encode per event),
 * with a keep-alive comment every `keepAlive`. It ends when `ended` fires (the server drains); the client going away
 * ends `run` (the request's scope closes). `render` writes the SSE messages of a batch of events (by default their
 * JSON envelopes; the dashboard's, HTML).
 */
export const sseSink = (
  attach: (sink: Sink) => Effect.Effect<never>,
  keepAlive: Duration.Duration,
  ended: Trigger,
  render: (items: ReadonlyArray<PositionedItem>) => string = (items) => items.map(messageOf).join("")
) =>
  Effect.gen(function*() {
    let room: (() => void) | undefined
    const body = new Readable({
      highWaterMark,
      read: () => {
        const wake = room
        room = undefined
        wake?.()
      }
    })
    const sink: Sink = {
      write: (items) => {
        const text = render(items)
        return text === "" ? body.readableLength < highWaterMark : body.push(text)
      },
      writable: Effect.async<void>((resume) => {
        if (body.readableLength < highWaterMark || body.destroyed) return resume(Effect.void)
        room = () => resume(Effect.void)
      })
    }
    body.push("retry: 1000\n\n")
    const timer = setInterval(() => body.push(": keep-alive\n\n"), Duration.toMillis(keepAlive))
    yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(timer)))
    const fiber = yield* Effect.forkScoped(
      attach(sink).pipe(Effect.ensuring(Effect.sync(() => {
        clearInterval(timer)
        if (!body.destroyed) body.push(null)
      })))
    )
    // not a race with the drain: that forks two more fibers per stream, which 2,000 streams pay in memory
    const stop = ended(() => fiber.unsafeInterruptAsFork(FiberId.none))
    yield* Effect.addFinalizer(() => Effect.sync(stop))
    return HttpServerResponse.raw(body, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
    })
  })

/** The SSE endpoints: a job's events until it ends, or all of the caller's, each holding one of its stream slots. */
export const EventsLive = HttpApiBuilder.group(Api, "events", (handlers) =>
  Effect.gen(function*() {
    const streams = yield* EventStream
    const waits = yield* Waits
    const config = yield* JobWatchConfig
    const slot = holdSlot(yield* Limits, "sse")
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
          asOwner(({ owner }) =>
            Effect.flatMap(
              streams.attachUserEvents({ ...urlParams, owner }, headers["last-event-id"]),
              (attach) => sseSink(attach, config.sseKeepAlive, waits.whenDrained)
            )
          )
        ))
  }))
