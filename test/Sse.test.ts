import { HttpServer } from "@effect/platform"
import { assert, describe, layer } from "@effect/vitest"
import { Chunk, Deferred, Effect, Fiber, Stream } from "effect"
import { EventSource } from "eventsource"
import pg from "pg"
import { JobWatchConfig } from "../src/Config.js"
import { JobEventType } from "../src/Domain/JobEvent.js"
import type { JobId } from "../src/Domain/JobId.js"
import { EventStream } from "../src/Streams/EventStream.js"
import { Jobs } from "../src/Jobs.js"
import { Repos } from "./support/repos.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import { makeLatch } from "./support/latch.js"
import { raw, serverLayer, token } from "./support/http.js"
import { databaseUrl } from "./support/TestDb.js"

interface Received {
  readonly id: string
  readonly event: string
  readonly data: {
    readonly type: string
    readonly jobId: string
    readonly version: number
    readonly status: string
    readonly progress: number
    readonly result?: unknown
  }
}

/** The test server's base URL. */
const baseUrl = Effect.map(HttpServer.HttpServer, (server) => {
  const address = server.address as HttpServer.TcpAddress
  return `http://127.0.0.1:${address.port}`
})

/**
 * An `EventSource` (the npm package, which resends `Last-Event-ID` when it reconnects) on `url`, with `bearer` in
 * the header when given. `drop()` cuts the current connection as a network failure would. Closed at the end.
 */
const openStream = (url: string, bearer?: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const received: Array<Received> = []
      const lastEventIds: Array<string | null> = []
      let drop: (() => void) | undefined
      const latch = makeLatch()
      const source = new EventSource(url, {
        fetch: async (input, init) => {
          const controller = new AbortController()
          const headers = new Headers(init?.headers as Record<string, string> | undefined)
          lastEventIds.push(headers.get("last-event-id"))
          if (bearer !== undefined) headers.set("authorization", `Bearer ${bearer}`)
          init?.signal?.addEventListener("abort", () => controller.abort())
          const response = await fetch(input, { ...init, headers, signal: controller.signal })
          // the body passes through a stream the test can break, as a network failure would
          const reader = response.body!.getReader()
          let broken: ReadableStreamDefaultController<Uint8Array> | undefined
          const body = new ReadableStream<Uint8Array>({
            start: (c) => void (broken = c),
            pull: async (c) => {
              const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }))
              if (done) c.close()
              else c.enqueue(value)
            },
            cancel: () => controller.abort()
          })
          drop = () => {
            broken?.error(new TypeError("network connection lost"))
            controller.abort()
          }
          return new Response(body, { status: response.status, headers: response.headers })
        }
      })
      // every name of the envelope's vocabulary: an event of another name would not be seen
      for (const name of JobEventType.literals) {
        source.addEventListener(name, (message) => {
          received.push({ id: message.lastEventId, event: name, data: JSON.parse(message.data) })
          latch.notify()
        })
      }
      /** Waits (up to 20 s) until `check` holds. */
      const until = (check: () => boolean) =>
        latch.until(check, () => new Error(`not so after 20 s; received ${JSON.stringify(received.map((r) => r.id))}`)).pipe(
          Effect.asVoid
        )
      return { source, received, lastEventIds, until, drop: () => drop?.() }
    }),
    ({ source }) => Effect.sync(() => source.close())
  )

type OpenStream = Effect.Effect.Success<ReturnType<typeof openStream>>

/**
 * Waits until every stream is live: runs `marker` (which writes an event they should deliver) until each has
 * received an event `isMarker` recognises, half a second apart at most (a stream that was not registered yet when
 * a marker was written never gets that one). Bounded: 40 markers.
 */
const untilAllSaw = <E, R>(
  streams: ReadonlyArray<OpenStream>,
  marker: Effect.Effect<void, E, R>,
  isMarker: (r: Received) => boolean
) =>
  Effect.gen(function*() {
    const sawOne = (stream: OpenStream) => stream.received.some(isMarker)
    for (let i = 0; i < 40; i++) {
      yield* marker
      const waits = streams.map((stream) => stream.until(() => sawOne(stream)).pipe(Effect.timeoutOption("500 millis")))
      yield* Effect.all(waits, { concurrency: "unbounded" }).pipe(Effect.orDie)
      if (streams.every(sawOne)) return
    }
    return yield* Effect.die(new Error("the streams never delivered a marker written after they opened"))
  })

describe("Server-Sent Events", () => {
  layer(serverLayer({ sseKeepAlive: "1 second" }), { excludeTestServices: true, timeout: 90_000 })((it) => {
    it.scoped("a job's stream delivers every version once, in order, 0 → 100 % then completed, and ends", () =>
      Effect.gen(function*() {
        const user = yield* token("alice")
        const jobs = yield* Jobs
        const workers = yield* Workers
        const queue = uniqueQueue("sse")
        const ref = yield* jobs.enqueue({ name: "render", queue, owner: "alice" })
        const base = yield* baseUrl
        // the token as a query parameter, as a browser's EventSource must send it
        const stream = yield* openStream(`${base}/v1/jobs/${ref.id}/events?access_token=${user}`)
        yield* stream.until(() => stream.received.length >= 1)
        yield* workers.claim("ws", { queues: [queue] })
        yield* workers.start(ref.id, { workerId: "ws" })
        for (let p = 10; p <= 100; p += 10) yield* workers.progress(ref.id, { percent: p, force: true }, { workerId: "ws" })
        yield* workers.complete(ref.id, { workerId: "ws", result: { url: "/done" } })
        yield* stream.until(() => stream.received.some((r) => r.event === "job.completed"))
        const versions = stream.received.map((r) => r.data.version)
        assert.deepStrictEqual(versions, Array.from({ length: versions.length }, (_, i) => i + 1))
        assert.strictEqual(versions.length, 1 + 1 + 1 + 10 + 1) // enqueue, claim, start, 10 reports, completion
        assert.deepStrictEqual(stream.received.map((r) => r.event), [
          "job.status.changed",
          "job.status.changed",
          "job.status.changed",
          ...Array.from({ length: 10 }, () => "job.progress"),
          "job.completed"
        ])
        // the SSE name is the envelope's type
        assert.deepStrictEqual(stream.received.map((r) => r.data.type), stream.received.map((r) => r.event))
        assert.deepStrictEqual(stream.received.map((r) => r.id), versions.map((v) => `${ref.id}.${v}`))
        assert.deepStrictEqual(stream.received.at(-1)!.data.result, { url: "/done" })
        assert.deepStrictEqual(stream.received.filter((r) => r.event === "job.progress").map((r) => r.data.progress), [
          10, 20, 30, 40, 50, 60, 70, 80, 90, 100
        ])
      }))

    it.scoped("a client dropped mid-stream reconnects with Last-Event-ID and gets exactly the events it missed", () =>
      Effect.gen(function*() {
        const user = yield* token("bob")
        const jobs = yield* Jobs
        const workers = yield* Workers
        const queue = uniqueQueue("drop")
        const ref = yield* jobs.enqueue({ name: "long", queue, owner: "bob" })
        const base = yield* baseUrl
        const stream = yield* openStream(`${base}/v1/jobs/${ref.id}/events`, user)
        yield* workers.claim("wd", { queues: [queue] })
        yield* workers.progress(ref.id, { percent: 5, force: true }, { workerId: "wd" })
        yield* stream.until(() => stream.received.length === 3)
        stream.drop()
        // while it is away
        for (let p = 10; p <= 50; p += 10) yield* workers.progress(ref.id, { percent: p, force: true }, { workerId: "wd" })
        yield* workers.complete(ref.id, { workerId: "wd" })
        yield* stream.until(() => stream.received.some((r) => r.event === "job.completed"))
        const versions = stream.received.map((r) => r.data.version)
        assert.deepStrictEqual(versions, Array.from({ length: 9 }, (_, i) => i + 1))
        // the reconnect asked for what followed the last event it had
        assert.deepStrictEqual(stream.lastEventIds.slice(0, 2), [null, `${ref.id}.3`])
        // a foreign job and a bad cursor
        const other = yield* token("mallory")
        assert.strictEqual((yield* raw("GET", `/v1/jobs/${ref.id}/events`, { token: other })).status, 404)
        const bad = yield* raw("GET", `/v1/jobs/${ref.id}/events`, { token: user, headers: { "last-event-id": "nonsense" } })
        assert.strictEqual(bad.status, 400)
        assert.strictEqual((yield* raw("GET", `/v1/jobs/${ref.id}/events`)).status, 401)
        assert.strictEqual((yield* raw("GET", `/v1/events?access_token=forged`)).status, 401)
        assert.strictEqual((yield* raw("GET", `/v1/events?status=bogus`, { token: user })).status, 400)
      }))

    it.scoped("the per-user stream shows the caller's jobs only; an admin's shows everyone's", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const base = yield* baseUrl
        const queue = uniqueQueue("mine")
        const carol = yield* openStream(`${base}/v1/events?queue=${queue}`, yield* token("carol"))
        const admin = yield* openStream(`${base}/v1/events?queue=${queue}`, yield* token("root", ["admin"]))
        // live once each has delivered a marker job of carol's enqueued after it opened
        const markers = new Set<string>()
        const marker = Effect.map(jobs.enqueue({ name: "marker", queue, owner: "carol" }), (ref) => void markers.add(ref.id))
        yield* untilAllSaw([carol, admin], marker, (r) => markers.has(r.data.jobId))
        const mine = yield* jobs.enqueue({ name: "mine", queue, owner: "carol" })
        const theirs = yield* jobs.enqueue({ name: "theirs", queue, owner: "dan" })
        const mine2 = yield* jobs.enqueue({ name: "mine2", queue, owner: "carol" })
        yield* jobs.cancel(theirs.id, { owner: "dan" })
        yield* jobs.cancel(mine2.id, { owner: "carol" })
        // a last marker: the streams deliver in commit order, so once it is in, nothing of the above is on its way
        const last = yield* jobs.enqueue({ name: "last", queue, owner: "carol" })
        for (const stream of [carol, admin]) yield* stream.until(() => stream.received.some((r) => r.data.jobId === last.id))
        const ofTest = (stream: OpenStream) =>
          stream.received.filter((r) => !markers.has(r.data.jobId) && r.data.jobId !== last.id)
        assert.deepStrictEqual(new Set(ofTest(carol).map((r) => r.data.jobId)), new Set([mine.id, mine2.id]))
        assert.strictEqual(ofTest(carol).length, 3)
        assert.deepStrictEqual(new Set(ofTest(admin).map((r) => r.data.jobId)), new Set([mine.id, mine2.id, theirs.id]))
        assert.strictEqual(ofTest(admin).length, 5)
        assert.include(ofTest(carol).map((r) => r.event), "job.canceled")
      }))

    it.scoped("20 transactions committing out of order: the live stream and every resume see each event exactly once", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const streams = yield* EventStream
        const repo = yield* Repos
        const { schema } = yield* JobWatchConfig
        const queue = uniqueQueue("interleave")
        const refs = yield* jobs.enqueueBatch(Array.from({ length: 20 }, (_, i) => ({ name: `j${i}`, queue, owner: "erin" })))
        const live = yield* streams.userEvents({ owner: "erin", queue })
        // "now" is the oldest transaction still running anywhere in the cluster (other test files write too): the
        // enqueue's events may come first; these are the version-2 events of the 20 transactions below
        const ofThem = (e: { readonly event: { readonly version: number } }) => e.event.version === 2
        // live once it delivers a marker job enqueued after it started (enqueued until one arrives: a marker
        // committed before the stream took its starting position is never delivered)
        const theirIds = new Set<string>(refs.map((r) => r.id))
        const sawMarker = yield* Deferred.make<void>()
        const collecting = yield* Effect.fork(live.pipe(
          Stream.tap((e) => theirIds.has(e.event.jobId) ? Effect.void : Deferred.succeed(sawMarker, undefined)),
          Stream.filter(ofThem),
          Stream.take(20),
          Stream.runCollect
        ))
        for (let i = 0; i < 40 && !(yield* Deferred.isDone(sawMarker)); i++) {
          yield* jobs.enqueue({ name: "marker", queue, owner: "erin" })
          yield* Deferred.await(sawMarker).pipe(Effect.timeoutOption("500 millis"))
        }
        assert.isTrue(yield* Deferred.isDone(sawMarker), "the stream never went live")
        // 20 transactions take their ids (and would take sequence numbers) in order 0..19 …
        const clients = yield* Effect.acquireRelease(
          Effect.promise(() =>
            Promise.all(refs.map(async () => {
              const client = new pg.Client({ connectionString: databaseUrl() })
              await client.connect()
              return client
            }))
          ),
          (clients) => Effect.promise(() => Promise.all(clients.map((c) => c.end())))
        )
        yield* Effect.promise(async () => {
          for (let i = 0; i < clients.length; i++) {
            await clients[i]!.query("BEGIN")
            await clients[i]!.query(
              `INSERT INTO "${schema}".job_events (job_id, version, type, status, previous_status, progress, previous_progress)
               VALUES ($1, 2, 'job.progress', 'pending', 'pending', $2, 0)`,
              [refs[i]!.id, i]
            )
          }
          // … and commit in another order: the last first, then the rest shuffled, a little apart
          const order = [19, 3, 17, 0, 11, 5, 15, 1, 9, 13, 7, 18, 2, 16, 4, 12, 6, 14, 8, 10]
          for (const i of order) {
            await clients[i]!.query("COMMIT")
            await new Promise((resolve) => setTimeout(resolve, 15))
          }
        })
        const got = Chunk.toReadonlyArray(yield* Fiber.join(collecting).pipe(Effect.timeout("20 seconds")))
        // every event once, in the order the transactions took their ids
        assert.deepStrictEqual(got.map((e) => e.event.jobId), refs.map((r) => r.id as JobId))
        // resuming after any of them: exactly the rest
        for (let k = 0; k < got.length; k++) {
          const [tx, jobId, version] = got[k]!.cursor.split(".")
          const rest = yield* repo.streamAfter({ tx: tx!, jobId: jobId!, version: Number(version) }, { owner: "erin", queue }, 1000)
          assert.deepStrictEqual(rest.filter(ofThem).map((e) => e.event.jobId), got.slice(k + 1).map((e) => e.event.jobId), `after ${k}`)
        }
        // and through HTTP, with Last-Event-ID
        const base = yield* baseUrl
        const resumed = yield* Effect.promise(async () => {
          const controller = new AbortController()
          const response = await fetch(`${base}/v1/events?queue=${queue}`, {
            headers: { authorization: `Bearer ${await Effect.runPromise(token("erin"))}`, "last-event-id": got[9]!.cursor },
            signal: controller.signal
          })
          const reader = response.body!.getReader()
          let text = ""
          while ((text.match(/^id: /gm) ?? []).length < 10) {
            const { value, done } = await reader.read()
            if (done) break
            text += new TextDecoder().decode(value)
          }
          controller.abort()
          return [...text.matchAll(/^id: (.*)$/gm)].map((m) => m[1]!)
        })
        assert.deepStrictEqual(resumed, got.slice(10).map((e) => e.cursor))
      }))
  })
})
