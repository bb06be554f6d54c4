import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { HttpClient } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { SpanKind } from "@opentelemetry/api"
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Either, Exit, Layer, Option, Scope } from "effect"
import { CompletionWatcher } from "../src/CompletionWatcher.js"
import { JobWatchConfig } from "../src/Config.js"
import type { JobId } from "../src/Domain/JobId.js"
import { externalSpanOf, isTraceparent, isTracestate, traceContextOfHeaders, traceparentOf } from "../src/Domain/TraceContext.js"
import { User } from "../src/Domain/Auth.js"
import { JobLib } from "../src/JobLib.js"
import { Jobs } from "../src/Jobs.js"
import * as Traces from "../src/Traces.js"
import { Workers } from "../src/Workers.js"
import * as Worker from "../src/Workers/Worker.js"
import { uniqueQueue } from "./support/fixtures.js"
import { raw, serverLayer, token } from "./support/http.js"
import { testLayer } from "./support/workers.js"

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
const spanId = "00f067aa0ba902b7"
const given = `00-${traceId}-${spanId}-01`

/** The trace context stored with job `id`. */
const storedOf = (id: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { schema } = yield* JobWatchConfig
    const rows = yield* sql<{ traceparent: string | null; tracestate: string | null }>`
      SELECT traceparent, tracestate FROM ${sql(`${schema}.jobs`)} WHERE id = ${id}`
    return rows[0]!
  }).pipe(Effect.orDie)

describe("W3C trace context", () => {
  it("a traceparent is version-traceid-spanid-flags: 55 characters of lowercase hex, no zero ids, no version ff", () => {
    assert.isTrue(isTraceparent(given))
    assert.isTrue(isTraceparent(`00-${traceId}-${spanId}-00`))
    for (
      const bad of [
        given.toUpperCase(),
        `${given}-`,
        given.slice(0, 54),
        `ff-${traceId}-${spanId}-01`,
        `00-${"0".repeat(32)}-${spanId}-01`,
        `00-${traceId}-${"0".repeat(16)}-01`,
        `00_${traceId}_${spanId}_01`,
        `00-${traceId.slice(0, 31)}g-${spanId}-01`,
        "",
        undefined,
        42
      ]
    ) assert.isFalse(isTraceparent(bad), String(bad))
  })

  it("a tracestate is up to 32 key=value members, 512 characters; a bad one is dropped, a bad traceparent drops both", () => {
    assert.isTrue(isTracestate("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"))
    assert.isTrue(isTracestate("tenant@vendor=x"))
    for (const bad of ["", "Upper=1", "k=", "k=a,b", "k=v=w", "x".repeat(513), Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(",")]) {
      assert.isFalse(isTracestate(bad), bad)
    }
    assert.deepStrictEqual(traceContextOfHeaders(` ${given} `, "rojo=1"), Option.some({ traceparent: given, tracestate: "rojo=1" }))
    assert.deepStrictEqual(traceContextOfHeaders(given, "not a state"), Option.some({ traceparent: given }))
    assert.isTrue(Option.isNone(traceContextOfHeaders("00-bad", "rojo=1")))
    assert.isTrue(Option.isNone(traceContextOfHeaders(undefined, undefined)))
    const span = Option.getOrThrow(externalSpanOf(given))
    assert.deepStrictEqual([span.traceId, span.spanId, span.sampled], [traceId, spanId, true])
    assert.strictEqual(traceparentOf(span), given)
  })

  // Effect's own tracer (no exporter): nothing is stored unless given
  layer(testLayer(), { excludeTestServices: true, timeout: 30_000 })((it) => {
    it.effect("without an exporter a job stores no trace context unless given one; a malformed one is refused, naming it", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const queue = uniqueQueue("trace-off")
        const plain = yield* Effect.withSpan(jobs.enqueue({ name: "plain", queue }), "producer")
        assert.deepStrictEqual(yield* storedOf(plain.id), { traceparent: null, tracestate: null })
        const traced = yield* jobs.enqueue({ name: "traced", queue, traceparent: given, tracestate: "rojo=1" })
        assert.deepStrictEqual(yield* storedOf(traced.id), { traceparent: given, tracestate: "rojo=1" })
        const [a, b] = yield* jobs.enqueueBatch([{ name: "a", queue }, { name: "b", queue, traceparent: given }])
        assert.deepStrictEqual(yield* storedOf(a!.id), { traceparent: null, tracestate: null })
        assert.deepStrictEqual(yield* storedOf(b!.id), { traceparent: given, tracestate: null })
        for (
          const [options, field] of [
            [{ traceparent: given.toUpperCase() }, "traceparent"],
            [{ traceparent: given, tracestate: "k=a,b" }, "tracestate"],
            [{ tracestate: "rojo=1" }, "tracestate"]
          ] as const
        ) {
          const refused = yield* Effect.either(jobs.enqueue({ name: "bad", queue, ...options }))
          assert.isTrue(Either.isLeft(refused) && refused.left._tag === "InvalidInput" && refused.left.field === field, String(refused))
        }
        // a claim hands the context to the worker, and says nothing of it for a job without
        const claimed = yield* Effect.flatMap(Workers, (workers) => workers.claim("w-trace-off", { queues: [queue], limit: 10 }))
        const byId = new Map(claimed.map((job) => [job.id, job]))
        assert.strictEqual(byId.get(traced.id)?.traceparent, given)
        assert.strictEqual(byId.get(traced.id)?.tracestate, "rojo=1")
        assert.isFalse("traceparent" in byId.get(plain.id)!)
      }))

    it.effect("a process of the previous version enqueues through job_enqueue's previous signature during a rolling deploy", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { schema } = yield* JobWatchConfig
        const queue = uniqueQueue("trace-old-signature")
        const [id, eventId] = [crypto.randomUUID(), crypto.randomUUID()]
        // the call as sql/0021's JobsRepo made it: 20 arguments, no trace context
        const [answer] = yield* sql.unsafe<{ inserted: number }>(
          `SELECT * FROM "${schema}".job_enqueue($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::jsonb[],
            $7::integer[], $8::timestamptz[], $9::bigint[], $10::integer[], $11::bigint[], $12::text[], $13::bigint[],
            $14::bigint[], $15::double precision[], $16::text[], $17::text[], $18::boolean[], $19::bigint[], $20::boolean)`,
          [[id], [eventId], [queue], ["old"], [null], ['{"from":"old"}'], [0], [null], [null], [1], [null], [null], [1000], [60000], [2], [null], [null], [false], [null], false]
        )
        assert.strictEqual(answer?.inserted, 1)
        const job = yield* Effect.flatMap(Jobs, (jobs) => jobs.get(id as JobId, {}))
        assert.deepStrictEqual([job.name, job.queue, job.status, job.version, job.payload], ["old", queue, "pending", 1, { from: "old" }])
        assert.deepStrictEqual(yield* storedOf(id), { traceparent: null, tracestate: null })
      }))
  })
})

// Effect's spans exported to OpenTelemetry's in-memory exporter, with `Traces.propagation`
const exporter = new InMemorySpanExporter()
const OtelLive = Layer.merge(
  NodeSdk.layer(() => ({ spanProcessor: new SimpleSpanProcessor(exporter), resource: { serviceName: "trace-context-test" } })),
  Traces.propagation
)
const finished = (name: string) => exporter.getFinishedSpans().filter((span) => span.name === name)
const processSpanOf = (id: JobId) =>
  finished("Worker.process").find((span) => span.attributes["messaging.message.id"] === id)

/** Runs a worker until `ids` completed. */
const runUntilDone = (queue: string, ids: ReadonlyArray<JobId>, options: Partial<Worker.RunOptions<unknown, never, never>> = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Worker.run({ queues: [queue], handler: () => Effect.succeed({ ok: true }), ...options }).pipe(
      Scope.extend(scope),
      Effect.provide(Worker.local)
    )
    const outcomes = yield* Effect.flatMap(CompletionWatcher, (watcher) => watcher.waitForAll(ids))
    assert.isTrue(outcomes.every((outcome) => outcome.status === "completed"))
    yield* Scope.close(scope, Exit.void)
  })


describe("with spans exported (Traces.propagation)", () => {
  layer(testLayer().pipe(Layer.provideMerge(OtelLive)), { excludeTestServices: true, timeout: 30_000 })((it) => {
    it.effect("Jobs.enqueue stores its own producer span; the worker's consumer span links to it from a trace of its own", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const queue = uniqueQueue("trace-on")
        const ref = yield* Effect.withSpan(jobs.enqueue({ name: "traced", queue }), "producer")
        const [producer] = finished("producer")
        const enqueue = finished("Jobs.enqueue").find((span) => span.parentSpanContext?.spanId === producer!.spanContext().spanId)
        assert.isDefined(enqueue, "Jobs.enqueue is the producer's child")
        assert.strictEqual(enqueue!.kind, SpanKind.PRODUCER)
        const created = enqueue!.spanContext()
        assert.deepStrictEqual(yield* storedOf(ref.id), { traceparent: `00-${created.traceId}-${created.spanId}-01`, tracestate: null })

        // a batch: one span for all its jobs; a job's own traceparent wins
        const [a, b] = yield* jobs.enqueueBatch([{ name: "a", queue }, { name: "b", queue, traceparent: given }])
        const batch = finished("Jobs.enqueueBatch").at(-1)!.spanContext()
        assert.strictEqual((yield* storedOf(a!.id)).traceparent, `00-${batch.traceId}-${batch.spanId}-01`)
        assert.strictEqual((yield* storedOf(b!.id)).traceparent, given)

        yield* runUntilDone(queue, [ref.id, a!.id, b!.id])
        const check = (id: JobId, link: { readonly traceId: string; readonly spanId: string }) => {
          const span: ReadableSpan | undefined = processSpanOf(id)
          assert.isDefined(span, `the Worker.process span of ${id}`)
          assert.strictEqual(span!.kind, SpanKind.CONSUMER)
          assert.isUndefined(span!.parentSpanContext, "a root")
          assert.notStrictEqual(span!.spanContext().traceId, link.traceId, "a trace of its own")
          assert.deepStrictEqual(span!.links.map((l) => [l.context.traceId, l.context.spanId]), [[link.traceId, link.spanId]])
          assert.strictEqual(span!.attributes["messaging.destination.name"], queue)
        }
        check(ref.id, created)
        check(a!.id, batch)
        check(b!.id, { traceId, spanId })
      }))

    it.effect("a job library task stores its push's span, and its claim hands it on", () =>
      Effect.gen(function*() {
        const lib = yield* JobLib
        const room = uniqueQueue("trace-room")
        const user = new User({ sub: "trace-lib", roles: ["worker"] })
        yield* lib.register(user, room, { name: "public:trace:Task", schema: { type: "object" } })
        const task = yield* Effect.withSpan(lib.push(user, room, "public:trace:Task", {}), "pusher")
        const push = finished("JobLib.push").at(-1)!
        assert.strictEqual(push.kind, SpanKind.PRODUCER)
        const context = `00-${push.spanContext().traceId}-${push.spanContext().spanId}-01`
        assert.strictEqual((yield* storedOf(task.id)).traceparent, context)
        const [claimed] = yield* lib.claim("trace-lib", { rooms: [room] })
        assert.strictEqual(claimed?.traceparent, context)
      }))

    it.effect("the claims a worker makes with its completions hand the trace context on too", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const queue = uniqueQueue("trace-claim-next")
        const refs = yield* jobs.enqueueBatch(Array.from({ length: 6 }, (_, i) => ({ name: `j${i}`, queue, traceparent: given })))
        yield* runUntilDone(queue, refs.map((ref) => ref.id), { claimWithCompletions: true, concurrency: 1 })
        for (const ref of refs) assert.deepStrictEqual(processSpanOf(ref.id)?.links.map((l) => l.context.spanId), [spanId])
      }))
  })
})

describe("with spans exported but Propagation off (a host's own OpenTelemetry setup without Traces.propagation)", () => {
  const unflagged = new InMemorySpanExporter()
  const SdkOnly = NodeSdk.layer(() => ({ spanProcessor: new SimpleSpanProcessor(unflagged), resource: { serviceName: "unflagged" } }))
  layer(testLayer().pipe(Layer.provideMerge(SdkOnly)), { excludeTestServices: true, timeout: 30_000 })((it) => {
    it.effect("a job stores no span of the enqueue, and Worker.run makes no span per job", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const queue = uniqueQueue("trace-unflagged")
        const ref = yield* jobs.enqueue({ name: "j", queue })
        assert.isTrue(unflagged.getFinishedSpans().some((span) => span.name === "Jobs.enqueue"), "spans are exported")
        assert.deepStrictEqual(yield* storedOf(ref.id), { traceparent: null, tracestate: null })
        yield* runUntilDone(queue, [ref.id])
        assert.isTrue(unflagged.getFinishedSpans().some((span) => span.name === "Workers.claim"), "the worker's spans are")
        assert.deepStrictEqual(unflagged.getFinishedSpans().filter((span) => span.name === "Worker.process"), [])
      }))
  })
})

describe("the traceparent header of an enqueue request", () => {
  // the test client's own traceparent (Effect's HttpClient sends its span's) is off: the requests set theirs
  const post = (path: string, bearer: string, json: unknown, headers: Record<string, string> = {}) =>
    Effect.locally(raw("POST", path, { token: bearer, json, headers }), HttpClient.currentTracerPropagation, false)

  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("is stored (a malformed one ignored, never a 4xx); the body's field wins and is checked; a batch's jobs get it", () =>
      Effect.gen(function*() {
        const alice = yield* token("alice")
        const worker = yield* token("trace-worker", ["worker"])
        const queue = uniqueQueue("trace-header")
        const withHeader = yield* post("/v1/jobs", alice, { name: "h", queue }, { traceparent: given, tracestate: "rojo=1" })
        assert.strictEqual(withHeader.status, 201)
        assert.deepStrictEqual(yield* storedOf(withHeader.body.id), { traceparent: given, tracestate: "rojo=1" })
        for (const header of ["00-garbage", given.toUpperCase(), `${given},${given}`]) {
          const ignored = yield* post("/v1/jobs", alice, { name: "m", queue }, { traceparent: header, tracestate: "rojo=1" })
          assert.strictEqual(ignored.status, 201, JSON.stringify(ignored.body))
          assert.deepStrictEqual(yield* storedOf(ignored.body.id), { traceparent: null, tracestate: null })
        }
        const none = yield* post("/v1/jobs", alice, { name: "n", queue })
        assert.deepStrictEqual(yield* storedOf(none.body.id), { traceparent: null, tracestate: null })
        const other = `00-${"a".repeat(32)}-${"b".repeat(16)}-00`
        const own = yield* post("/v1/jobs", alice, { name: "o", queue, traceparent: other }, { traceparent: given })
        assert.deepStrictEqual(yield* storedOf(own.body.id), { traceparent: other, tracestate: null })
        const bad = yield* post("/v1/jobs", alice, { name: "b", queue, traceparent: "00-garbage" })
        assert.strictEqual(bad.status, 400, JSON.stringify(bad.body))
        assert.include(JSON.stringify(bad.body), "traceparent")

        const batch = yield* post("/v1/jobs/batch", alice, { jobs: [{ name: "b1", queue }, { name: "b2", queue, traceparent: other }] }, {
          traceparent: given
        })
        assert.strictEqual(batch.status, 201)
        assert.strictEqual((yield* storedOf(batch.body.jobs[0].id)).traceparent, given)
        assert.strictEqual((yield* storedOf(batch.body.jobs[1].id)).traceparent, other)

        // the worker API's claim answers it as an optional field
        const claim = yield* post("/v1/workers/trace-worker/claim", worker, { queues: [queue], limit: 100 })
        const answered = new Map<string, { traceparent?: string; tracestate?: string }>(
          claim.body.jobs.map((job: { id: string }) => [job.id, job])
        )
        assert.strictEqual(answered.get(withHeader.body.id)?.traceparent, given)
        assert.strictEqual(answered.get(withHeader.body.id)?.tracestate, "rojo=1")
        assert.isFalse("traceparent" in answered.get(none.body.id)!)
      }))
  })
})
