import { HttpLayerRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it, layer } from "@effect/vitest"
import { Cause, Context, Deferred, Duration, Effect, Fiber, Layer, Logger, LogLevel, Schedule } from "effect"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Auth from "../src/Auth.js"
import { RoutesLive, routerConfig } from "../src/Http.js"
import { requestLogger } from "../src/Http/guards.js"
import { Limits } from "../src/Http/Limits.js"
import * as JobWatch from "../src/JobWatch.js"
import { Jobs } from "../src/Jobs.js"
import { StreamTail } from "../src/Streams/Tail.js"
import { Workers } from "../src/Workers.js"
import { liveUrlOf, makeSseParser, openLive, rowCounts, signInAt } from "./support/dashboard.js"
import type { SseMessage } from "./support/dashboard.js"
import { uniqueQueue } from "./support/fixtures.js"
import { secret, serverLayer, testKeys, token } from "./support/http.js"
import { baseOf, request, startService, stopWith, tempDir } from "./support/service.js"
import * as TestDb from "./support/TestDb.js"
import { databaseUrl, dropSchema, freshSchema } from "./support/TestDb.js"

// The dashboard's live streams (GET /dashboard/live, the jobs list's and a job page's) under real client behaviour,
// as test/Shutdown.test.ts, MassDisconnect.test.ts, Limits.test.ts and Sse.test.ts check the API's own streams.

const jwtSecret = new TextDecoder().decode(secret)
const shutdownSeconds = 3

/** Waits (polling every 20 ms, at most `seconds`) until `check` holds; fails naming `what` otherwise. */
const until = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, seconds = 30) =>
  Effect.flatMap(check, (ok) => (ok ? Effect.void : Effect.fail(`not yet: ${what}`))).pipe(
    Effect.retry(Schedule.spaced(Duration.millis(20))),
    Effect.timeoutFail({
      duration: Duration.seconds(seconds),
      onTimeout: () => new Error(`timed out waiting: ${what}`)
    })
  )

/** The loopback URL of a test server. */
const urlOf = (server: HttpServer.HttpServer) => `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`
const baseUrl = Effect.map(HttpServer.HttpServer, urlOf)

/** A JSON request to the API at `base` as `bearer`; answers the status and the parsed body. */
const api = (base: string, bearer: string, method: string, path: string, body?: unknown) =>
  Effect.map(
    request(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    }),
    (answer) => ({ status: answer.status, body: answer.text === "" ? undefined : JSON.parse(answer.text) })
  )

describe("the dashboard's live streams in the real process (node --import tsx src/main.ts)", () => {
  it.live(
    "SIGTERM ends both views' streams in the drain, within the shutdown timeout; resumed on another server with " +
      "Last-Event-ID, every row arrives once",
    () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* Effect.addFinalizer(() => dropSchema(schema))
        // the process, and another server on its database (this one's, with the same signing key), started side by
        // side: the process stops, its browsers resume on the other
        const start = Effect.gen(function*() {
          const service = yield* startService({
            DATABASE_URL: databaseUrl(),
            JOBWATCH_SCHEMA: schema,
            JOBWATCH_DATA_DIR: yield* tempDir,
            JOBWATCH_JWT_SECRET: jwtSecret,
            JOBWATCH_SHUTDOWN_TIMEOUT: `${shutdownSeconds}s`,
            JOBWATCH_LOG_LEVEL: "debug",
            PORT: "0",
            HOST: "127.0.0.1"
          })
          return { service, base: yield* baseOf(service) }
        })
        const [first, second] = yield* Effect.all([
          start,
          Effect.map(Layer.build(serverLayer({ schema })), (context) => ({
            base: urlOf(Context.get(context, HttpServer.HttpServer))
          }))
        ], { concurrency: "unbounded" })
        const dana = yield* token("dana")
        const box = yield* token("box", ["worker"])
        const queue = uniqueQueue("dash-list")
        const enqueue = (n: number) =>
          Effect.map(
            api(second.base, dana, "POST", "/v1/jobs/batch", {
              jobs: Array.from({ length: n }, () => ({ name: "listed", queue }))
            }),
            (answer) => (answer.body.jobs as ReadonlyArray<{ readonly id: string }>).map((job) => job.id)
          )
        // the job of the job page, held by a worker that reports progress (with force: each report is an event)
        const jobQueue = uniqueQueue("dash-job")
        const id = (yield* api(first.base, dana, "POST", "/v1/jobs", { name: "followed", queue: jobQueue })).body
          .id as string
        const claimed = yield* api(first.base, box, "POST", "/v1/workers/box:1/claim", { queues: [jobQueue] })
        assert.strictEqual(claimed.status, 200)
        const progress = (percent: number, message: string) =>
          Effect.tap(
            api(second.base, box, "POST", `/v1/jobs/${id}/progress`, {
              workerId: "box:1",
              percent,
              message,
              force: true
            }),
            (answer) => assert.strictEqual(answer.status, 200, JSON.stringify(answer.body))
          )
        yield* progress(10, "on the page")

        // a browser signs in and opens the jobs list and the job's page, each with its one event stream
        const cookie = yield* signInAt(first.base, dana)
        const pageOf = (path: string) =>
          Effect.map(request(`${first.base}${path}`, { headers: { cookie } }), (page) => {
            assert.strictEqual(page.status, 200, page.text)
            return page.text
          })
        const listUrl = liveUrlOf(yield* pageOf(`/dashboard/jobs?queue=${queue}`))
        const jobPage = yield* pageOf(`/dashboard/jobs/${id}`)
        const jobUrl = liveUrlOf(jobPage)
        const onPage = Math.max(...[...jobPage.matchAll(/<tr id="event-(\d+)"/g)].map((m) => Number(m[1])))
        const list = yield* openLive(`${first.base}${listUrl}`, { cookie })
        const page = yield* openLive(`${first.base}${jobUrl}`, { cookie })
        assert.strictEqual(yield* Deferred.await(list.status), 200)
        assert.strictEqual(yield* Deferred.await(page.status), 200)

        // live: what happens now arrives on both
        const seen = yield* enqueue(5)
        yield* progress(20, "live")
        yield* list.until("the first rows", () => seen.every((job) => rowCounts(list.messages, "job-").has(job)))
        yield* page.until("the first progress", () => page.messages.some((m) => m.data.includes("message: live")))
        // more, then SIGTERM at once: these may or may not reach the first process's streams before they end
        const racing = yield* enqueue(5)
        yield* progress(30, "racing the stop")
        const stopped = yield* stopWith(first.service, "SIGTERM")
        assert.strictEqual(stopped.code, 0, first.service.output())
        assert.isBelow(stopped.took, (shutdownSeconds + 1) * 1000, first.service.output())
        // the drain ended both streams cleanly (not the deadline cutting their connections)
        assert.isUndefined((yield* Deferred.await(list.ended)).error)
        assert.isUndefined((yield* Deferred.await(page.ended)).error)
        const output = first.service.output()
        assert.notMatch(output, /still open at the shutdown deadline/, output)
        assert.match(output, /GET \/dashboard\/live 200 \d+ms/)
        assert.notInclude(output, dana)

        // while the browser is away, more happens; it comes back (to the other server) after its last message
        const whileAway = yield* enqueue(5)
        yield* progress(40, "while away")
        yield* progress(50, "while away too")
        const resume = (url: string, last: string | undefined) =>
          openLive(`${second.base}${url}`, { cookie, ...(last === undefined ? {} : { "last-event-id": last }) })
        const list2 = yield* resume(listUrl, list.lastId())
        const page2 = yield* resume(jobUrl, page.lastId())
        assert.strictEqual(yield* Deferred.await(list2.status), 200)
        assert.strictEqual(yield* Deferred.await(page2.status), 200)
        // a marker on each after everything else: a repeat would come before it
        const [marker] = yield* enqueue(1)
        yield* progress(60, "the marker")
        yield* list2.until("the marker row", () => rowCounts(list2.messages, "job-").has(marker!))
        yield* page2.until("the marker event", () =>
          page2.messages.some((m) => m.data.includes("message: the marker")))

        const rows = rowCounts([...list.messages, ...list2.messages], "job-")
        const expected = [...seen, ...racing, ...whileAway, marker!]
        assert.deepStrictEqual(
          new Map(expected.map((job) => [job, rows.get(job)])),
          new Map(expected.map((job) => [job, 1]))
        )
        assert.strictEqual(rows.size, expected.length, "rows of other jobs")
        const versions = rowCounts([...page.messages, ...page2.messages], "event-")
        const final = (yield* api(second.base, dana, "GET", `/v1/jobs/${id}`)).body.version as number
        for (let v = onPage + 1; v <= final; v++) assert.strictEqual(versions.get(String(v)), 1, `version ${v}`)
        for (const [v, n] of versions) assert.strictEqual(n, 1, `version ${v} more than once`)
        // each message of the job page carries the job's state as it was then, newest last
        assert.include(page2.messages.at(-1)!.data, `data-version="${final}"`)
      }).pipe(Effect.scoped),
    { timeout: 120_000 }
  )
})

/** What the in-process server logged, with whether the line's cause holds a defect. */
const logged: Array<{ readonly level: LogLevel.LogLevel; readonly message: string; readonly defect: boolean }> = []
const capture = Logger.make(({ cause, logLevel, message }) => {
  const text = Array.isArray(message) ? message.join(" ") : String(message)
  logged.push({ level: logLevel, message: text, defect: Cause.isDie(cause) })
})
let nodeServer: Http.Server | undefined

/**
 * The real routes on a real loopback port (raw sockets reach it) with the service's request log (a 5xx or a defect
 * is an error line) captured at debug, the limits off, and the process's stream tail to count its subscribers.
 */
const liveServer = HttpLayerRouter.serve(RoutesLive, {
  disableLogger: true,
  disableListenLog: true,
  routerConfig,
  middleware: requestLogger
}).pipe(
  Layer.provide(Auth.layerJwt),
  Layer.provide(testKeys),
  // the routes' `StreamTail.Default` is this one: a layer is built once per build
  Layer.provideMerge(Layer.merge(JobWatch.layer, StreamTail.Default)),
  Layer.provideMerge(
    TestDb.layer({ reaper: false, rateLimit: null, maxStreamsPerUser: null }, { maxConnections: 20 })
  ),
  Layer.provideMerge(NodeHttpServer.layer(() => (nodeServer = Http.createServer()), {
    port: 0,
    host: "127.0.0.1"
  })),
  Layer.provide(Logger.replace(Logger.defaultLogger, capture)),
  Layer.provide(Logger.minimumLogLevel(LogLevel.Debug))
)

/** A dashboard stream on a raw socket, connected when `open` runs, which succeeds once a 200 sent its first message. */
const rawStream = (port: number, path: string, cookie: string) => {
  let socket: Net.Socket | undefined
  let text = ""
  const open = Effect.async<void, Error>((resume) => {
    socket = Net.connect(port, "127.0.0.1")
    socket.on("data", (chunk: Buffer) => {
      const before = text.includes("retry:")
      text += chunk.toString()
      if (before || !text.includes("retry:")) return
      if (text.startsWith("HTTP/1.1 200")) resume(Effect.void)
      else resume(Effect.fail(new Error(`not a stream: ${text.slice(0, 200)}`)))
    })
    socket.on("error", (error) => resume(Effect.fail(error)))
    socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: ${cookie}\r\n\r\n`)
  })
  return { open, text: () => text, port: () => socket?.localPort, destroy: () => socket?.destroy() }
}

describe("the dashboard's live streams in process", () => {
  layer(liveServer, { excludeTestServices: true, timeout: 120_000 })((it) => {
    it.scoped(
      "1,000 streams of a few users (both views) leave at once mid-burst: the tail lets them all go, the process " +
        "stays healthy",
      () =>
        Effect.gen(function*() {
          const tail = yield* StreamTail
          const jobs = yield* Jobs
          const workers = yield* Workers
          const base = yield* baseUrl
          const port = Number(new URL(base).port)
          // the server's open connections, by their client's port
          const connections = new Map<Net.Socket, number | undefined>()
          nodeServer!.on("connection", (socket) => {
            connections.set(socket, socket.remotePort)
            socket.on("close", () => connections.delete(socket))
          })
          yield* until("no stream open before", Effect.map(tail.stats, (s) => s.subscribers === 0))
          const before = (yield* tail.stats).subscribers
          const loggedBefore = logged.length
          const queue = uniqueQueue("mass")
          const users = ["ann", "ben", "cat", "dov"]
          // each user: a session, and a job held by a worker whose page the job views follow
          const sessions = yield* Effect.forEach(users, (sub) =>
            Effect.gen(function*() {
              const cookie = yield* signInAt(base, yield* token(sub))
              const jobQueue = uniqueQueue(`mass-${sub}`)
              const ref = yield* jobs.enqueue({ name: "followed", queue: jobQueue, owner: sub })
              yield* workers.claim(`w-${sub}`, { queues: [jobQueue], start: true })
              return { sub, cookie, job: ref.id, worker: `w-${sub}` }
            }))
          // 1,000 streams: each user's jobs list in 190 tabs, its job's page in 60
          const perUser = 250
          const jobViews = 60
          const streams = sessions.flatMap((session) =>
            Array.from({ length: perUser }, (_, i) => ({
              session,
              view: i < jobViews ? "job" as const : "jobs" as const,
              ...rawStream(
                port,
                i < jobViews
                  ? `/dashboard/live?view=job&id=${session.job}`
                  : `/dashboard/live?view=jobs&queue=${queue}`,
                session.cookie
              )
            })))
          yield* Effect.addFinalizer(() => Effect.sync(() => streams.forEach((s) => s.destroy())))
          const memoryBefore = process.memoryUsage()
          const openedAt = Date.now()
          const openCpu = process.cpuUsage()
          // the accept backlog is bounded: 250 at a time
          for (let i = 0; i < streams.length; i += 250) {
            yield* Effect.all(streams.slice(i, i + 250).map((s) => s.open), { concurrency: "unbounded" })
          }
          yield* until(
            "every stream subscribed to the tail",
            Effect.map(tail.stats, (s) => s.subscribers === before + streams.length)
          )
          const openMs = Date.now() - openedAt
          const openCpuMs = process.cpuUsage(openCpu).user / 1000
          const memoryOpen = process.memoryUsage()

          // all live: a job of each user reaches every jobs view of that user, a progress report every job view
          const markers = new Map<string, string>()
          for (const session of sessions) {
            const listed = yield* jobs.enqueue({ name: "listed", queue, owner: session.sub })
            yield* workers.progress(session.job, { percent: 10, force: true }, { workerId: session.worker })
            const { version } = yield* jobs.get(session.job)
            markers.set(`jobs ${session.sub}`, `<tr id="job-${listed.id}"`)
            markers.set(`job ${session.sub}`, `<tr id="event-${version}"`)
          }
          yield* until("every stream received its user's change", Effect.sync(() =>
            streams.every((s) => s.text().includes(markers.get(`${s.view} ${s.session.sub}`)!))))

          // a burst of events in flight (rows to write, job reads for the job views), and every client leaves at once
          const burst = yield* Effect.fork(Effect.all([
            ...sessions.map((session) =>
              jobs.enqueueBatch(Array.from({ length: 50 }, () => ({ name: "burst", queue, owner: session.sub })))),
            ...sessions.map((session) =>
              workers.progress(session.job, { percent: 20, force: true }, { workerId: session.worker }))
          ], { concurrency: "unbounded" }))
          const leftAt = Date.now()
          const leaveCpu = process.cpuUsage()
          const ports = new Set(streams.map((s) => s.port()))
          for (const s of streams) s.destroy()
          yield* until(
            "the server saw every client leave",
            Effect.sync(() => ![...connections.values()].some((port) => ports.has(port)))
          )
          yield* until("the tail let every stream go", Effect.map(tail.stats, (s) => s.subscribers === before))
          const leaveMs = Date.now() - leftAt
          const leaveCpuMs = process.cpuUsage(leaveCpu).user / 1000
          yield* Fiber.join(burst)

          // healthy: /ready, and a new stream of the jobs list gets a row enqueued after it opened
          assert.strictEqual((yield* request(`${base}/ready`)).status, 200)
          const fresh = yield* openLive(`${base}/dashboard/live?view=jobs&queue=${queue}`, {
            cookie: sessions[0]!.cookie
          })
          assert.strictEqual(yield* Deferred.await(fresh.status), 200)
          const after = yield* jobs.enqueue({ name: "after", queue, owner: sessions[0]!.sub })
          yield* fresh.until("a row after the mass leave", () => rowCounts(fresh.messages, "job-").has(after.id))
          fresh.close()
          yield* until("the new stream let go too", Effect.map(tail.stats, (s) => s.subscribers === before))
          // nothing failed: no error line (a 5xx, a defect), no defect logged at any level
          const lines = logged.slice(loggedBefore)
          const failures = lines.filter((l) => l.defect || LogLevel.greaterThanEqual(l.level, LogLevel.Error))
          assert.deepStrictEqual(failures, [])
          const requests = lines.filter((l) => /^GET \/dashboard\/live 200/.test(l.message))
          assert.isAbove(requests.length, 0, "the request log was captured")
          const mib = (bytes: number) => Math.round(bytes / 2 ** 20)
          console.log(
            `${streams.length} dashboard streams: opened in ${openMs} ms (${Math.round(openCpuMs)} ms of CPU), left ` +
              `mid-burst in ${leaveMs} ms (${Math.round(leaveCpuMs)} ms of CPU); this process's heap ` +
              `${mib(memoryBefore.heapUsed)} → ${mib(memoryOpen.heapUsed)} MiB, rss ${mib(memoryBefore.rss)} → ` +
              `${mib(memoryOpen.rss)} MiB (clients included)`
          )
        }),
      { timeout: 120_000 }
    )

    it.scoped("a progress message with \\n, \\r\\n and \\r arrives as one well-formed message of HTML rows", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const workers = yield* Workers
        const base = yield* baseUrl
        const cookie = yield* signInAt(base, yield* token("eve"))
        const queue = uniqueQueue("lines")
        const ref = yield* jobs.enqueue({ name: "two\nlines", queue, owner: "eve" })
        const list = yield* openLive(`${base}/dashboard/live?view=jobs&queue=${queue}`, { cookie })
        const running = yield* openLive(`${base}/dashboard/live?view=jobs&queue=${queue}&status=running`, {
          cookie
        })
        const page = yield* openLive(`${base}/dashboard/live?view=job&id=${ref.id}`, { cookie })
        for (const stream of [list, running, page]) assert.strictEqual(yield* Deferred.await(stream.status), 200)
        yield* workers.claim("w-eve", { queues: [queue], start: true })
        // one event, two rows: it brings the job into the list of running jobs, and replaces its row in the other
        const { version: started } = yield* jobs.get(ref.id)
        const startedRow = (enter: boolean) => (m: SseMessage) =>
          m.data.includes(
            `<tr id="job-${ref.id}" data-version="${started}" data-status="running" data-live="row" ` +
              `data-into="jobs-body" data-enter="${enter}">`
          )
        yield* running.until("the row entering the running list", () => running.messages.some(startedRow(true)))
        yield* list.until("the row replaced in the list", () => list.messages.some(startedRow(false)))
        const text = "first line\nsecond <b>line</b>\r\nthird line\rfourth line"
        const ack = yield* workers.progress(ref.id, { percent: 42, message: text, step: "a\r\nstep", force: true }, {
          workerId: "w-eve"
        })
        assert.isTrue(ack.persisted)
        const { version } = yield* jobs.get(ref.id)
        const rowOf = (m: SseMessage) => m.data.includes(`<tr id="job-${ref.id}" data-version="${version}"`)
        yield* list.until("the progress row", () => list.messages.some(rowOf))
        const eventOf = (m: SseMessage) => m.data.includes(`<tr id="event-${version}"`)
        yield* page.until("the progress event", () => page.messages.some(eventOf))

        for (const stream of [list, running, page]) {
          const raw = stream.raw()
          // every line of the stream is a field or a comment, ended by LF alone: a CR would end a line for the parser
          assert.notInclude(raw, "\r")
          for (const line of raw.split("\n")) {
            assert.match(line, /^(?:$|: keep-alive$|retry: \d+$|id: \S+$|event: (?:jobs|job)$|data: )/)
          }
          // parsed again as one chunk (not as it came): the same messages
          const again: Array<SseMessage> = []
          makeSseParser((m) => again.push(m))(raw)
          assert.deepStrictEqual(again, stream.messages)
        }
        // the row: one message, one `<tr>` with its id and version, the text's lines as LF (HTML text), escaped
        const message = list.messages.find(rowOf)!
        assert.strictEqual(message.event, "jobs")
        assert.strictEqual(message.data.match(/<tr /g)?.length, message.data.match(/<\/tr>/g)?.length)
        const row = `<tr id="job-${ref.id}" data-version="${version}" data-status="running" data-live="row"`
        assert.match(message.data, new RegExp(`^(?:<tr [^]*?</tr>)*${row}[^]*?</tr>`))
        const lines = "first line\nsecond &lt;b&gt;line&lt;/b&gt;\nthird line\nfourth line"
        assert.include(message.data, lines)
        assert.include(message.data, "a\nstep")
        assert.include(message.data, "two\nlines")
        assert.notInclude(message.data, "<b>")
        // the job page's message: the timeline row and the job's state, the same text in both
        const event = page.messages.find(eventOf)!
        assert.strictEqual(event.event, "job")
        assert.match(event.data, /<section id="job-summary"[^>]* data-live="replace"/)
        assert.strictEqual(event.data.split(lines).length, 3)
      }))
  })
})

describe("a user's dashboard streams and the stream limit", () => {
  layer(
    Layer.provideMerge(Limits.Default, serverLayer({ rateLimit: null, maxStreamsPerUser: 2 })),
    { excludeTestServices: true, timeout: 60_000 }
  )((it) => {
    it.scoped("both views take the user's slots, as the API's do: 429 past the limit; a closed one gives it back", () =>
      Effect.gen(function*() {
        const limits = yield* Limits
        const jobs = yield* Jobs
        const base = yield* baseUrl
        const bearer = yield* token("erin")
        const cookie = yield* signInAt(base, bearer)
        const ref = yield* jobs.enqueue({ name: "held", queue: uniqueQueue("limit"), owner: "erin" })
        const listPath = `${base}/dashboard/live?view=jobs`
        const jobPath = `${base}/dashboard/live?view=job&id=${ref.id}`
        const list = yield* openLive(listPath, { cookie })
        const page = yield* openLive(jobPath, { cookie })
        assert.strictEqual(yield* Deferred.await(list.status), 200)
        assert.strictEqual(yield* Deferred.await(page.status), 200)
        yield* until("both streams hold a slot", Effect.map(limits.streams("erin"), (n) => n === 2))

        // past the limit: another dashboard stream of either view, an API stream, a long-poll
        for (const path of [listPath, jobPath]) {
          const over = yield* request(path, { headers: { cookie } })
          assert.strictEqual(over.status, 429, path)
          assert.strictEqual(over.headers.get("retry-after"), "1")
          assert.match(String(over.headers.get("content-type")), /^text\/html/)
        }
        const auth = { authorization: `Bearer ${bearer}` }
        assert.strictEqual((yield* request(`${base}/v1/events`, { headers: auth })).status, 429)
        const poll = yield* request(`${base}/v1/jobs/${ref.id}`, { headers: { ...auth, prefer: "wait=5" } })
        assert.strictEqual(poll.status, 429)
        // pages do not hold a slot; another user is not held back; the refusals left no slot taken
        assert.strictEqual((yield* request(`${base}/dashboard/jobs`, { headers: { cookie } })).status, 200)
        const other = yield* openLive(listPath, { cookie: yield* signInAt(base, yield* token("frank")) })
        assert.strictEqual(yield* Deferred.await(other.status), 200)
        assert.strictEqual(yield* limits.streams("erin"), 2)

        // the job page closes (its tab goes): its slot comes back once the server sees it, and serves a new stream
        page.close()
        yield* until("the closed stream's slot is back", Effect.map(limits.streams("erin"), (n) => n === 1))
        const again = yield* openLive(jobPath, { cookie })
        assert.strictEqual(yield* Deferred.await(again.status), 200)
        yield* until("the new stream holds it", Effect.map(limits.streams("erin"), (n) => n === 2))
        list.close()
        again.close()
        yield* until("every slot is back", Effect.map(limits.streams("erin"), (n) => n === 0))
      }))
  })
})
