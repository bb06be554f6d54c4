import { FetchHttpClient } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Client from "../src/client.js"
import * as Traces from "../src/Traces.js"
import * as Worker from "../src/Workers/Worker.js"
import { uniqueQueue } from "./support/fixtures.js"
import { secret, token } from "./support/http.js"
import { openSse, request, type Service, startService, tempDir } from "./support/service.js"
import { databaseUrl, dropSchema, freshSchema } from "./support/TestDb.js"

// `npm start`'s service with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a receiver on loopback (a plain node:http server
// taking POST /v1/traces, as a collector does), and without it.

const jwtSecret = new TextDecoder().decode(secret)
const loadedModulesSpy = fileURLToPath(new URL("./support/loadedModules.mjs", import.meta.url))

/** A span as OTLP/JSON carries it, with its resource's service name. */
interface ReceivedSpan {
  readonly service: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly kind: number
  readonly links?: ReadonlyArray<{ readonly traceId: string; readonly spanId: string }>
  readonly attributes?: ReadonlyArray<{ readonly key: string; readonly value: { readonly stringValue?: string } }>
}
const attributeOf = (span: ReceivedSpan, key: string) => span.attributes?.find((a) => a.key === key)?.value.stringValue

/** OTLP's span kinds (the JSON numbers). */
const SERVER = 2
const PRODUCER = 4
const CONSUMER = 5

/**
 * An OTLP/HTTP receiver on a free loopback port: `status(n)` answers the n-th export request (1-based; 200 by
 * default). Keeps the requests' bodies, content types and the spans they carry.
 */
const receiver = (status: (n: number) => number = () => 200) =>
  Effect.acquireRelease(
    Effect.async<{
      readonly url: string
      readonly bodies: Array<string>
      readonly contentTypes: Array<string | undefined>
      readonly answered: Array<number>
      readonly spans: () => ReadonlyArray<ReceivedSpan>
      readonly server: Http.Server
    }>((resume) => {
      const bodies: Array<string> = []
      const contentTypes: Array<string | undefined> = []
      const answered: Array<number> = []
      const server = Http.createServer((req, res) => {
        let body = ""
        req.on("data", (chunk: Buffer) => (body += chunk.toString()))
        req.on("end", () => {
          if (req.method !== "POST" || req.url !== "/v1/traces") {
            res.writeHead(404).end()
            return
          }
          const code = status(answered.length + 1)
          answered.push(code)
          if (code === 200) {
            bodies.push(body)
            contentTypes.push(req.headers["content-type"])
          }
          res.writeHead(code, { "content-type": "application/json" }).end("{}")
        })
      })
      const spans = () =>
        bodies.flatMap((body) => {
          const parsed = JSON.parse(body) as {
            resourceSpans: ReadonlyArray<{
              resource: { attributes: ReadonlyArray<{ key: string; value: { stringValue?: string } }> }
              scopeSpans: ReadonlyArray<{ spans: ReadonlyArray<Omit<ReceivedSpan, "service">> }>
            }>
          }
          return parsed.resourceSpans.flatMap((rs) => {
            const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? ""
            return rs.scopeSpans.flatMap((ss) => ss.spans.map((span) => ({ ...span, service })))
          })
        })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as Net.AddressInfo
        resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, bodies, contentTypes, answered, spans, server }))
      })
    }),
    ({ server }) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
  )

/** A file for the loaded-modules spy's list, removed at the end. */
const modulesFile = Effect.map(tempDir, (dir) => Path.join(dir, "modules.txt"))
const loadedModules = (file: string) => Fs.readFileSync(file, "utf8").split("\n").filter((line) => line !== "")

/** The service on a fresh schema, with `env` added and the loaded-modules spy writing to `modules`. */
const start = (env: Record<string, string>, modules: string) =>
  Effect.gen(function*() {
    const schema = freshSchema()
    yield* Effect.addFinalizer(() => dropSchema(schema))
    const dataDir = yield* tempDir
    const service = yield* startService({
      DATABASE_URL: databaseUrl(),
      JOBWATCH_SCHEMA: schema,
      JOBWATCH_DATA_DIR: dataDir,
      JOBWATCH_JWT_SECRET: jwtSecret,
      JOBWATCH_SHUTDOWN_TIMEOUT: "4s",
      PORT: "0",
      HOST: "127.0.0.1",
      // the test runner's own settings, if any, stay out
      OTEL_EXPORTER_OTLP_ENDPOINT: "",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "",
      OTEL_SERVICE_NAME: "",
      JOBWATCH_LOADED_MODULES: modules,
      ...env
    }, { nodeArgs: ["--import", loadedModulesSpy] })
    const base = (yield* service.waitFor(/Listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!
    return { service, base }
  })

/** SIGTERM, and how the process exited and how long it took. */
const stop = (service: Service) =>
  Effect.gen(function*() {
    const sent = Date.now()
    service.child.kill("SIGTERM")
    const exited = yield* Deferred.await(service.exited).pipe(
      Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error(`no exit 30 s after SIGTERM: ${service.output()}`) })
    )
    return { ...exited, took: exited.at - sent }
  })

const send = (method: "POST" | "PATCH") => (url: string, bearer: string, json: unknown, headers: Record<string, string> = {}) =>
  Effect.map(
    request(url, {
      method,
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json", ...headers },
      body: JSON.stringify(json)
    }),
    (response) => ({ status: response.status, body: JSON.parse(response.text) as Record<string, unknown> })
  )
const post = send("POST")
const patch = send("PATCH")

/** The job, once its status is `status` (long-polls of up to 10 s, at most 6). */
const awaitStatus = (base: string, bearer: string, id: string, status: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 6; i++) {
      const answer = yield* request(`${base}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${bearer}`, prefer: "wait=10" } })
      const job = JSON.parse(answer.text) as { readonly status: string }
      if (job.status === status) return job
    }
    return yield* Effect.die(new Error(`job ${id} never became ${status}`))
  })

const producerTrace = "5a1d0c2e8f3b4a6d9c7e1f2a3b4c5d6e"
const producerSpan = "1b2c3d4e5f6a7b8c"

describe.concurrent("traces of the real process (node --import tsx src/main.ts)", () => {
  it.live("enqueue → claim → complete: the service's spans and the worker's reach an OTLP receiver, linked", () =>
    Effect.gen(function*() {
      const collector = yield* receiver()
      const modules = yield* modulesFile
      const { base, service } = yield* start({
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        OTEL_SERVICE_NAME: "jobwatch-traces-test"
      }, modules)
      const [alice, worker] = yield* Effect.all([token("alice"), token("tracer", ["worker"])])
      const queue = uniqueQueue("traces")

      // a producer in another trace enqueues over HTTP, its span in the traceparent header
      const enqueued = yield* post(`${base}/v1/jobs`, alice, { name: "traced", queue }, {
        traceparent: `00-${producerTrace}-${producerSpan}-01`
      })
      assert.strictEqual(enqueued.status, 201, JSON.stringify(enqueued.body))
      const id = enqueued.body["id"] as string

      // a worker over HTTP in this process, exporting its spans with `Traces.layer` (flushed when its scope closes)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Worker.run({ workerId: "tracer:w1", queues: [queue], handler: () => Effect.succeed({ done: true }) }).pipe(
          Effect.provide(Client.httpWorkerBackend({ baseUrl: base, token: worker }).pipe(Layer.provideMerge(FetchHttpClient.layer)))
        )
        yield* awaitStatus(base, alice, id, "completed")
      })).pipe(Effect.provide(Traces.layer({ url: `${collector.url}/v1/traces`, serviceName: "jobwatch-traces-worker" })))

      // a browser's event stream, its token in the query string
      const stream = yield* openSse(`${base}/v1/jobs/${id}/events?access_token=${alice}`)
      assert.strictEqual(yield* Deferred.await(stream.opened), 200)
      assert.isUndefined((yield* Deferred.await(stream.ended)).error)

      // the stop flushes the service's spans
      const stopped = yield* stop(service)
      assert.strictEqual(stopped.code, 0, service.output())
      assert.isBelow(stopped.took, 5000, service.output())
      assert.notMatch(service.output(), /exporting traces .*failed/)

      const spans = collector.spans()
      const ofService = spans.filter((span) => span.service === "jobwatch-traces-test")
      const ofWorker = spans.filter((span) => span.service === "jobwatch-traces-worker")
      // OTLP/HTTP with JSON bodies
      assert.isTrue(collector.contentTypes.length > 0 && collector.contentTypes.every((type) => type === "application/json"))

      // the request's server span continues the producer's trace; Jobs.enqueue (a producer span) is its descendant
      const server = ofService.find((span) =>
        span.kind === SERVER && span.parentSpanId === producerSpan && attributeOf(span, "url.path") === "/v1/jobs"
      )
      assert.isDefined(server, "the enqueue request's http.server span, child of the traceparent's")
      assert.strictEqual(server!.traceId, producerTrace)
      assert.strictEqual(server!.name, "http.server POST")
      const enqueue = ofService.find((span) => span.name === "Jobs.enqueue" && span.traceId === producerTrace)
      assert.isDefined(enqueue, "a Jobs.enqueue span in the producer's trace")
      assert.strictEqual(enqueue!.kind, PRODUCER)
      const byId = new Map(ofService.map((span) => [span.spanId, span]))
      const ancestors: Array<string> = []
      for (let at: ReceivedSpan | undefined = enqueue; at?.parentSpanId && ancestors.length < 20; at = byId.get(at.parentSpanId)) {
        ancestors.push(at.parentSpanId)
      }
      assert.include(ancestors, server!.spanId)
      assert.strictEqual(ancestors.at(-1), producerSpan)
      // the worker's requests are server spans too (the claim, the completion), and SQL statements are spans
      const requests = ofService.filter((span) => span.kind === SERVER)
        .map((span) => `${attributeOf(span, "http.request.method")} ${attributeOf(span, "url.path")}`)
      assert.include(requests, "POST /v1/workers/tracer:w1/claim", JSON.stringify(requests))
      assert.include(requests, `PATCH /v1/jobs/${id}`, JSON.stringify(requests))
      assert.isTrue(ofService.some((span) => span.name === "sql.execute"))

      // the worker's span for the job: a consumer span of its own trace, linked to the producer's span
      const process = ofWorker.find((span) => span.name === "Worker.process" && attributeOf(span, "messaging.message.id") === id)
      assert.isDefined(process, `the worker's Worker.process span, among ${ofWorker.map((span) => span.name).join(", ")}`)
      assert.strictEqual(process!.kind, CONSUMER)
      assert.isUndefined(process!.parentSpanId || undefined, "a root")
      assert.notStrictEqual(process!.traceId, producerTrace)
      assert.deepStrictEqual(process!.links?.map((link) => [link.traceId, link.spanId]), [[producerTrace, enqueue!.spanId]])
      assert.strictEqual(attributeOf(process!, "messaging.destination.name"), queue)

      // no token in any span: the query's access_token is redacted
      const all = collector.bodies.join("\n")
      for (const bearer of [alice, worker]) assert.notInclude(all, bearer)
      const sse = ofService.find((span) => attributeOf(span, "url.path") === `/v1/jobs/${id}/events`)
      assert.strictEqual(attributeOf(sse!, "url.query"), "access_token=REDACTED")
      // the SDK was loaded (the spy sees what it looks for)
      assert.isTrue(loadedModules(modules).some((line) => line.includes("@opentelemetry/sdk-trace-base")))
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("without OTEL_EXPORTER_OTLP_ENDPOINT nothing of OpenTelemetry is loaded, so nothing is exported", () =>
    Effect.gen(function*() {
      const modules = yield* modulesFile
      const { base, service } = yield* start({}, modules)
      const [alice, worker] = yield* Effect.all([token("alice"), token("untraced", ["worker"])])
      const queue = uniqueQueue("untraced")
      const enqueued = yield* post(`${base}/v1/jobs`, alice, { name: "job", queue }, { traceparent: `00-${producerTrace}-${producerSpan}-01` })
      assert.strictEqual(enqueued.status, 201)
      const claim = yield* post(`${base}/v1/workers/untraced/claim`, worker, { queues: [queue], start: true })
      const claimed = (claim.body["jobs"] as ReadonlyArray<{ id: string; traceparent?: string }>)[0]
      // the header's context is stored and handed on all the same, for a worker that exports spans
      assert.deepStrictEqual(claimed, { ...claimed, id: enqueued.body["id"] as string, traceparent: `00-${producerTrace}-${producerSpan}-01` })
      const completed = yield* patch(`${base}/v1/jobs/${claimed!.id}`, worker, { workerId: "untraced", status: "completed", result: 1 })
      assert.strictEqual(completed.status, 200, JSON.stringify(completed.body))
      const stopped = yield* stop(service)
      assert.strictEqual(stopped.code, 0, service.output())
      const lines = loadedModules(modules)
      // the spy saw the service's modules (its entry), and nothing of OpenTelemetry among them
      assert.isTrue(lines.some((line) => line.endsWith("/src/main.ts")), lines.join("\n"))
      assert.deepStrictEqual(lines.filter((line) => line.includes("opentelemetry")), [])
      assert.notMatch(service.output(), /traces/i)
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("a collector that fails: the first failure of the streak is logged, then its end, never a line per export", () =>
    Effect.gen(function*() {
      const collector = yield* receiver((n) => (n <= 3 ? 500 : 200))
      const modules = yield* modulesFile
      const { base, service } = yield* start({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_BSP_SCHEDULE_DELAY: "50" }, modules)
      const alice = yield* token("alice")
      // requests make spans, each export batch is one request: go on until three refused and one accepted
      for (let i = 0; i < 5000 && collector.answered.length < 4; i++) {
        const answer = yield* post(`${base}/v1/jobs`, alice, { name: "job", queue: "failing-collector" })
        assert.strictEqual(answer.status, 201)
      }
      assert.deepStrictEqual(collector.answered.slice(0, 4), [500, 500, 500, 200])
      yield* service.waitFor(/exporting traces to .* recovered after 3 failures/)
      const stopped = yield* stop(service)
      assert.strictEqual(stopped.code, 0, service.output())
      const output = service.output()
      assert.strictEqual(output.match(/exporting traces to http:\/\/127\.0\.0\.1:\d+\/v1\/traces failed/g)?.length, 1, output)
      assert.strictEqual(output.match(/exporting traces to .* recovered/g)?.length, 1, output)
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("a collector that never answers slows nothing and the stop still ends within JOBWATCH_SHUTDOWN_TIMEOUT", () =>
    Effect.gen(function*() {
      // accepts connections and never answers
      const held: Array<Net.Socket> = []
      const silent = yield* Effect.acquireRelease(
        Effect.async<Net.Server>((resume) => {
          const server = Net.createServer((socket) => void held.push(socket))
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) =>
          Effect.sync(() => {
            held.forEach((socket) => socket.destroy())
            server.close()
          })
      )
      const port = (silent.address() as Net.AddressInfo).port
      const modules = yield* modulesFile
      const { base, service } = yield* start({
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        OTEL_BSP_SCHEDULE_DELAY: "50",
        JOBWATCH_SHUTDOWN_TIMEOUT: "3s"
      }, modules)
      const alice = yield* token("alice")
      for (let i = 0; i < 5000 && held.length === 0; i++) {
        const answer = yield* post(`${base}/v1/jobs`, alice, { name: "job", queue: "silent-collector" })
        assert.strictEqual(answer.status, 201)
      }
      assert.isAbove(held.length, 0, "an export is waiting on the collector")
      const again = yield* post(`${base}/v1/jobs`, alice, { name: "job", queue: "silent-collector" })
      assert.strictEqual(again.status, 201)
      const stopped = yield* stop(service)
      assert.strictEqual(stopped.code, 0, service.output())
      assert.isBelow(stopped.took, 4000, service.output())
      assert.notMatch(service.output(), /did not stop within/)
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
