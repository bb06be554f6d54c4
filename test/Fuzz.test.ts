import { HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, JSONSchema, Layer, Schema } from "effect"
import fc from "fast-check"
import { JobWatchConfig } from "../src/Config.js"
import * as V from "../src/Domain/Values.js"
import { Rpcs } from "../src/Rpcs.js"
import * as F from "./support/fuzz.js"
import { raw, serverLayer, token } from "./support/http.js"

// A schema-driven fuzz of every operation /openapi.json lists and of every RPC on /rpc: for each, RUNS generated bad
// requests (wrong types, missing and extra fields, huge strings, deep nesting, lone surrogates, numbers past every
// edge, bad enums, broken JSON, wrong content types, bad tokens, Prefer and Last-Event-ID values), sent a few at a
// time to one in-process server. Nothing may answer 5xx (or a defect over RPC), every 4xx is a typed JSON error, and
// no row may be written but by a 2xx. The seed is fixed (JOBWATCH_FUZZ_SEED replays another); a failure names the
// operation and the index of the request, and prints the request.

const SEED = Number(process.env.JOBWATCH_FUZZ_SEED ?? 20261201)
const RUNS = Number(process.env.JOBWATCH_FUZZ_RUNS ?? 200)
const RPC_RUNS = Number(process.env.JOBWATCH_FUZZ_RPC_RUNS ?? 25)
const CONCURRENCY = 8

interface Sent {
  readonly label: string
  /** The RPC's tag (RPC bodies only). */
  readonly tag: string
  readonly request: string
  readonly status: number
  readonly contentType: string
  readonly text: string
}

/** The RPCs that only read. */
const readOnly = new Set([
  "JobGet",
  "JobStatus",
  "JobList",
  "JobWait",
  "JobWaitAll",
  "JobWaitFirst",
  "JobWatch",
  "EventsWatch",
  "WebhookList",
  "WebhookGet",
  "WebhookDeliveries"
])

const uuids = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi

/** encodeURIComponent, which throws on a lone surrogate: then that surrogate's (invalid) UTF-8 bytes. */
const encode = (s: string) => {
  try {
    return encodeURIComponent(s)
  } catch {
    return "%ED%A0%80"
  }
}

/** Sends one request; a stream (SSE) answer is not read, only its status. */
const send = (label: string, method: string, url: string, headers: Record<string, string>, body?: string, contentType?: string) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    let request = HttpClientRequest.make(method as "GET")(url).pipe(HttpClientRequest.setHeaders(headers))
    if (body !== undefined) request = HttpClientRequest.bodyText(request, body, contentType)
    const response = yield* client.execute(request)
    const type = String(response.headers["content-type"] ?? "")
    const text = type.includes("text/event-stream") ? "" : yield* response.text
    return { status: response.status, contentType: type, text }
  }).pipe(
    Effect.scoped,
    Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("no answer within 30 s") }),
    Effect.catchAll((error) => Effect.succeed({ status: -1, contentType: "", text: String(error) })),
    Effect.map((answer): Sent => ({
      label,
      tag: label.startsWith("RPC ") ? label.split(" ")[1]! : "",
      request: `${method} ${url.slice(0, 200)} ${JSON.stringify(headers).slice(0, 200)} ${(body ?? "").slice(0, 300)}`,
      ...answer
    }))
  )

const isTypedError = (sent: Sent) => {
  try {
    const body = JSON.parse(sent.text)
    return typeof body?._tag === "string" && typeof body?.message === "string" && sent.contentType.includes("application/json")
  } catch {
    return false
  }
}

/** The jobs, webhook endpoints and deliveries of the schema, to compare before and after. */
const snapshot = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { schema } = yield* JobWatchConfig
  const jobs = yield* sql.unsafe<{ id: string; version: number; status: string }>(
    `SELECT id::text, version, status FROM "${schema}".jobs`
  )
  const events = yield* sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".job_events`)
  const endpoints = yield* sql.unsafe<{ id: string; hash: string }>(
    `SELECT id::text, md5(e::text) AS hash FROM "${schema}".webhook_endpoints e`
  )
  const deliveries = yield* sql.unsafe<{ id: string; job: string }>(`SELECT id::text, job_id::text AS job FROM "${schema}".webhook_deliveries`)
  return {
    jobs: new Map(jobs.map((row) => [row.id, row.version])),
    finished: new Set(jobs.flatMap((row) => ["completed", "failed", "canceled", "deleted"].includes(row.status) ? [row.id] : [])),
    events: events[0]!.n,
    endpoints: new Map(endpoints.map((row) => [row.id, row.hash])),
    deliveries: new Map(deliveries.map((row) => [row.id, row.job]))
  }
})
type Snapshot = Effect.Effect.Success<typeof snapshot>

/** Rows written (or changed) that no 2xx answer accounts for: a 2xx accounts for the ids in its URL and its answer. */
const unaccounted = (before: Snapshot, after: Snapshot, accounted: ReadonlySet<string>) => {
  const problems: Array<string> = []
  const ok = (id: string) => accounted.has(id.toLowerCase())
  for (const [id, version] of after.jobs) {
    if (before.jobs.get(id) !== version && !ok(id)) problems.push(`job ${id} written (version ${before.jobs.get(id)} → ${version})`)
  }
  for (const [id, hash] of after.endpoints) {
    if (before.endpoints.get(id) !== hash && !ok(id)) problems.push(`webhook endpoint ${id} written`)
  }
  // a job may vanish only by a purge: its own DELETE answered 2xx, or (finished) an admin's purge that answered 2xx
  for (const [id] of before.jobs) {
    if (!after.jobs.has(id) && !ok(id) && !(accounted.has(purged) && before.finished.has(id))) {
      problems.push(`job ${id} removed`)
    }
  }
  for (const [id] of before.endpoints) {
    if (!after.endpoints.has(id) && !ok(id)) problems.push(`webhook endpoint ${id} deleted`)
  }
  for (const [id, job] of after.deliveries) {
    if (!before.deliveries.has(id) && !ok(job)) problems.push(`webhook delivery ${id} of job ${job} written`)
  }
  return problems
}

/** Accounts for the finished jobs an admin's purge (which names no ids) removed. */
const purged = "purge"

const account = (accounted: Set<string>, sent: Sent) => {
  if (sent.request.startsWith("POST /v1/admin/jobs/purge") || sent.request.startsWith("RPC JobsPurge ")) accounted.add(purged)
  for (const id of `${sent.request} ${sent.text}`.match(uuids) ?? []) accounted.add(id.toLowerCase())
}

const summary = (sent: ReadonlyArray<Sent>) => {
  const byStatus = new Map<number, number>()
  for (const s of sent) byStatus.set(s.status, (byStatus.get(s.status) ?? 0) + 1)
  return [...byStatus].sort(([a], [b]) => a - b).map(([status, n]) => `${status}: ${n}`).join(", ")
}

const fail = (what: string, problems: ReadonlyArray<string>) => {
  if (problems.length > 0) {
    assert.fail(`${problems.length} ${what} (seed ${SEED}):\n${problems.slice(0, 25).join("\n")}`)
  }
}

/**
 * `effect` with an `HttpClient` that keeps its connections to the test server alive: the test layer's client opens
 * one per request, which costs the fuzz about a third of its time.
 */
const withKeepAlive = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const { port } = (yield* HttpServer.HttpServer).address as HttpServer.TcpAddress
    const client = yield* Effect.map(HttpClient.HttpClient, HttpClient.mapRequest(HttpClientRequest.prependUrl(`http://127.0.0.1:${port}`)))
    return yield* Effect.provideService(effect, HttpClient.HttpClient, client)
  }).pipe(Effect.provide(NodeHttpClient.layerWithoutAgent.pipe(Layer.provide(NodeHttpClient.makeAgentLayer({ keepAlive: true })))))

describe("fuzz: bad input never answers 5xx and writes nothing", () => {
  layer(
    // a stream whose client left is noticed at its next keep-alive write: soon, so that the server stops at once
    serverLayer({
      rateLimit: null,
      maxStreamsPerUser: null,
      maxWait: "100 millis",
      webhooks: false,
      refreshInterval: null,
      sseKeepAlive: "500 millis"
    }),
    { excludeTestServices: true, timeout: 240_000 }
  )((it) => {
    it.effect("every operation of /openapi.json and every RPC, a few hundred generated bad requests each", () =>
      withKeepAlive(Effect.gen(function*() {
        const started = Date.now()
        const cpu = process.cpuUsage()
        const user = yield* token("fuzz-user")
        const worker = yield* token("fuzz-worker", ["worker"])
        const admin = yield* token("fuzz-admin", ["admin"])
        const expired = yield* token("fuzz-user", [], -60)
        const loneSub = yield* token("\ud800")

        // fixtures: jobs in several states and a webhook endpoint, so that some requests reach real rows
        const queue = "fuzz-q"
        const enqueue = (json: unknown) => Effect.map(raw("POST", "/v1/jobs", { token: user, json }), (a) => a.body.id as string)
        const pending = yield* enqueue({ name: "pending", queue })
        const scheduled = yield* enqueue({ name: "scheduled", queue, delaySeconds: 3600 })
        const running = yield* enqueue({ name: "running", queue: "fuzz-held", priority: 9 })
        const done = yield* enqueue({ name: "done", queue: "fuzz-held", priority: 8 })
        yield* raw("POST", "/v1/workers/fuzz-worker:w/claim", { token: worker, json: { queues: ["fuzz-held"], limit: 2, start: true } })
        yield* raw("PATCH", `/v1/jobs/${done}`, { token: worker, json: { workerId: "fuzz-worker:w", status: "completed", result: 1 } })
        const hook = yield* raw("POST", "/v1/webhooks", { token: user, json: { url: "https://93.184.215.14/hook", eventTypes: ["all"] } })
        assert.strictEqual(hook.status, 201, JSON.stringify(hook.body))
        const ids = [pending, scheduled, running, done, hook.body.id as string]
        const strings = [...ids, queue, "fuzz-held", "fuzz-worker:w", "completed", "all", "pending,running"]

        const spec = (yield* raw("GET", "/openapi.json")).body
        const resolve = F.resolver(spec.components?.schemas ?? {})
        const validish = F.validish(resolve, strings)
        const before = yield* snapshot

        /** A body of `schema`, broken: 1 to 3 of its fields (nested too) replaced by bad values or deleted. */
        const bodyOf = (schema: F.JsonSchema | undefined): fc.Arbitrary<unknown> => {
          const paths = F.pathsOf(resolve, schema)
          const mutated = paths.length === 0 ? F.badValue : fc.tuple(
            validish(schema),
            fc.array(
              fc.tuple(fc.constantFrom(...paths), fc.oneof({ weight: 5, arbitrary: F.badValue }, { weight: 1, arbitrary: fc.constant(undefined) })),
              { minLength: 1, maxLength: 3 }
            )
          ).map(([base, changes]) => changes.reduce((value, [path, bad]) => F.setAt(value, path, bad), base))
          return fc.oneof({ weight: 8, arbitrary: mutated }, { weight: 1, arbitrary: F.badValue }, { weight: 1, arbitrary: F.brokenBody })
        }
        const badToken = fc.constantFrom("", "Bearer", "Bearer not.a.jwt", `Bearer ${expired}`, `Bearer ${loneSub}`, `Basic ${user}`)
        const tokenFor = (isWorker: boolean) =>
          fc.oneof(
            { weight: 12, arbitrary: fc.constant(`Bearer ${isWorker ? worker : user}`) },
            { weight: 1, arbitrary: fc.constant(`Bearer ${admin}`) },
            { weight: 1, arbitrary: fc.constant(`Bearer ${isWorker ? user : worker}`) },
            { weight: 2, arbitrary: badToken }
          )
        const contentType = fc.oneof(
          { weight: 12, arbitrary: fc.constant("application/json") },
          {
            weight: 3,
            arbitrary: fc.constantFrom(
              "multipart/form-data; boundary=x",
              "multipart/form-data",
              "application/x-www-form-urlencoded",
              "text/plain",
              "application/octet-stream",
              "application/json; charset=latin1",
              "a/b/c"
            )
          }
        )
        const segment = (name: string) =>
          fc.oneof(
            { weight: 5, arbitrary: fc.constantFrom(...(name === "workerId" ? ["fuzz-worker:w", "fuzz-worker:w2"] : ids)) },
            { weight: 2, arbitrary: fc.uuid() },
            { weight: 2, arbitrary: F.nastyString.map(encode) },
            {
              weight: 2,
              arbitrary: fc.constantFrom("%00", "%ED%A0%80", "%zz", "%", "a%2Fb", "w".repeat(201), "w".repeat(1500), pending.toUpperCase(), "..", "%20")
            }
          ).map((s) => (s === "" ? "%20" : s))
        const queryValue = fc.oneof(
          fc.constantFrom("", "NaN", "Infinity", "-1", "0", "1", "1.5", "1e400", "100", "101", "9007199254740993", "x", "%00", "%ED%A0%80", "pending,bogus", "queued,active", "all", "%zz"),
          fc.constantFrom(201, 1001, 3000).map((n) => "q".repeat(n)),
          validish({ type: "string" }).map((s) => encode(String(s)))
        )
        const headerValues: Record<string, fc.Arbitrary<string>> = {
          prefer: fc.constantFrom("wait=1", "wait=0", "wait=abc", "wait=-5", "wait=99999999999", "respond-async, wait=1", `wait=${"9".repeat(500)}`, "wait=1;x", ""),
          "last-event-id": fc.constantFrom("", "1.2", "abc", "0.0", "-1.-1", "99999999999999999999.99999999999999999999", "x".repeat(300), "1.", ".1", "18446744073709551616.1")
        }

        // ---- the HTTP operations ----
        const operations = Object.entries<Record<string, any>>(spec.paths).flatMap(([path, item]) =>
          Object.entries<any>(item).map(([method, op]) => ({ path, method: method.toUpperCase(), op }))
        )
        assert.strictEqual(operations.length, 35, "the operations of /openapi.json")
        const sent: Array<Sent> = []
        for (const [index, { method, op, path }] of operations.entries()) {
          const parameters: Array<any> = op.parameters ?? []
          const isWorker = path.startsWith("/v1/workers") || (method === "PATCH" && path === "/v1/jobs/{id}") || path.endsWith("/progress")
          const bodySchema = op.requestBody?.content?.["application/json"]?.schema
          const requestArb = fc.record({
            path: fc.tuple(...(parameters.filter((p) => p.in === "path").map((p) => segment(p.name).map((v) => [p.name, v] as const)))),
            query: fc.array(
              fc.oneof(
                ...parameters.filter((p) => p.in === "query").map((p) => queryValue.map((v) => `${p.name}=${v}`)),
                fc.constantFrom("x=1", "access_token=garbage", "afterVersion=-1", "%zz=1", "limit=1&limit=2")
              ),
              { maxLength: 3 }
            ),
            headers: fc.record(
              Object.fromEntries(parameters.filter((p) => p.in === "header" && p.name in headerValues).map((p) => [p.name, headerValues[p.name]!])),
              { requiredKeys: [] }
            ),
            authorization: tokenFor(isWorker),
            contentType,
            body: bodySchema === undefined ? fc.option(F.badValue, { freq: 8, nil: undefined }) : bodyOf(bodySchema)
          })
          const requests = fc.sample(requestArb, { seed: SEED + index, numRuns: RUNS })
          const answers = yield* Effect.forEach(requests, (r, i) => {
            let url = path
            for (const [name, value] of r.path) url = url.replace(`{${name}}`, value)
            if (r.query.length > 0) url += `?${r.query.join("&")}`
            const headers: Record<string, string> = { ...r.headers }
            if (r.authorization !== "") headers.authorization = r.authorization
            const body = r.body === undefined ? undefined : F.toJson(r.body)
            return send(`${method} ${path} #${i}`, method, url, headers, body, r.contentType)
          }, { concurrency: CONCURRENCY })
          sent.push(...answers)
        }

        // ---- the RPCs: NDJSON frames on /rpc ----
        // a request that would wait or stream for ever (a wait for a job that never ends, a live stream) is followed
        // by its interruption in the same body, so that every answer ends
        const endless = new Set(["JobWait", "JobWaitAll", "JobWaitFirst", "JobWatch", "EventsWatch"])
        const rpcSent: Array<Sent> = []
        for (const [index, [tag, rpc]] of [...Rpcs.requests].entries()) {
          const schema = JSONSchema.make(Schema.make(rpc.payloadSchema.ast)) as F.JsonSchema
          const rpcResolve = F.resolver(schema.$defs ?? {})
          const rpcBody = (() => {
            const paths = F.pathsOf(rpcResolve, schema)
            const valid = F.validish(rpcResolve, strings)(schema)
            const mutated = paths.length === 0 ? valid : fc.tuple(
              valid,
              fc.array(fc.tuple(fc.constantFrom(...paths), F.badValue), { minLength: 0, maxLength: 3 })
            ).map(([base, changes]) => changes.reduce((value, [path, bad]) => F.setAt(value, path, bad), base))
            return fc.oneof({ weight: 8, arbitrary: mutated }, { weight: 1, arbitrary: F.badValue })
          })()
          const frameArb = fc.record({
            payload: rpcBody,
            shape: fc.oneof(
              { weight: 10, arbitrary: fc.constant("request") },
              {
                weight: 3,
                arbitrary: fc.constantFrom("headers {}", "headers null", "headers odd", "id abc", "id number", "unknown tag", "bogus _tag", "garbage", "deep", "no payload", "bad ack", "blank lines")
              }
            ),
            worker: fc.boolean(),
            authorization: badToken
          })
          const bodies = fc.sample(frameArb, { seed: SEED + 1000 + index, numRuns: RPC_RUNS })
          const answers = yield* Effect.forEach(bodies, (b, i) => {
            const payload = F.toJson(b.payload)
            const frame = (fields: string) => `{"_tag":"Request","id":"1","tag":${JSON.stringify(tag)},"payload":${payload},${fields}}\n`
            const text = b.shape === "headers {}" ? frame(`"headers":{}`)
              : b.shape === "headers null" ? frame(`"headers":null`)
              : b.shape === "headers odd" ? frame(`"headers":[["authorization"],1]`)
              : b.shape === "id abc" ? `{"_tag":"Request","id":"abc","tag":${JSON.stringify(tag)},"payload":${payload},"headers":[]}\n`
              : b.shape === "id number" ? `{"_tag":"Request","id":1,"tag":${JSON.stringify(tag)},"payload":${payload},"headers":[]}\n`
              : b.shape === "unknown tag" ? `{"_tag":"Request","id":"1","tag":"${tag}x","payload":${payload},"headers":[]}\n`
              : b.shape === "bogus _tag" ? `{"_tag":"Bogus","id":"1"}\n`
              : b.shape === "garbage" ? `${payload.slice(0, 50)}garbage\n`
              : b.shape === "deep" ? `${F.nested(10_000)}\n`
              : b.shape === "no payload" ? `{"_tag":"Request","id":"1","tag":${JSON.stringify(tag)},"headers":[]}\n`
              : b.shape === "bad ack" ? `${frame(`"headers":[]`)}{"_tag":"Ack","requestId":{}}\n`
              : b.shape === "blank lines" ? `\n\n${frame(`"headers":[]`)}\n \n`
              : frame(`"headers":[]`)
            const body = endless.has(tag) ? `${text}{"_tag":"Interrupt","requestId":"1"}\n` : text
            const authorization = b.shape === "request" && i % 7 === 3 ? b.authorization : `Bearer ${b.worker ? worker : user}`
            const headers: Record<string, string> = authorization === "" ? {} : { authorization }
            return send(`RPC ${tag} #${i} (${b.shape})`, "POST", "/rpc", headers, body, "application/ndjson")
          }, { concurrency: CONCURRENCY })
          rpcSent.push(...answers)
        }

        // ---- what must hold ----
        const all = [...sent, ...rpcSent]
        const show = (s: Sent) => `${s.label} => ${s.status} ${s.text.slice(0, 300)}\n    ${s.request}`
        const routerNotFound = sent.filter((s) => s.status === 404 && s.text === "").length
        console.log(
          `fuzz (seed ${SEED}): ${sent.length} HTTP requests (${summary(sent)}; ${routerNotFound} of the 404s the router's, ` +
            `for paths no route takes), ${rpcSent.length} RPC bodies (${summary(rpcSent)}) in ${((Date.now() - started) / 1000).toFixed(1)} s`
        )
        fail("requests were not answered (a closed connection or no answer)", all.filter((s) => s.status === -1).map(show))
        fail("answers were 5xx", all.filter((s) => s.status >= 500).map(show))
        // a path that matches no route is the router's 404 (or 405), without a body: not an operation's answer
        fail(
          "4xx answers were not a typed JSON error",
          sent.filter((s) => s.status >= 400 && s.status < 500 && !isTypedError(s) && !(s.status === 404 && s.text === "")).map(show)
        )
        fail(
          "RPC answers were defects or not typed",
          rpcSent.flatMap((s) => {
            if (s.status === 400) return isTypedError(s) ? [] : [show(s)]
            if (s.status !== 200) return [show(s)]
            const frames = s.text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line))
            return frames.some((f) => f._tag !== "Exit" || JSON.stringify(f.exit?.cause ?? null).includes("\"Die\"")) ? [show(s)] : []
          })
        )
        const accounted = new Set<string>()
        // what a read answers does not account for a write: only answers of requests that may write count
        for (const s of sent) {
          if (s.status >= 200 && s.status < 300 && !s.request.startsWith("GET ") && !s.request.startsWith("POST /v1/jobs/wait")) account(accounted, s)
        }
        for (const s of rpcSent) if (s.status === 200 && s.text.includes("\"Success\"") && !readOnly.has(s.tag)) account(accounted, s)
        const after = yield* snapshot
        fail("rows were written by requests that were refused", unaccounted(before, after, accounted))
        // and the check sees writes: with nothing accounted for, the 2xx answers' writes would be reported
        assert.isNotEmpty(unaccounted(before, after, new Set()))
        // the fuzz reached the services, not only the decoders: some requests succeeded, and it wrote
        assert.isAbove(sent.filter((s) => s.status >= 200 && s.status < 300).length, 50, summary(sent))
        assert.isTrue([...after.jobs].some(([id, version]) => before.jobs.get(id) !== version), "the fuzz changed jobs")
        console.log(`fuzz: ${(process.cpuUsage(cpu).user / 1e6).toFixed(1)} s of CPU`)
      })), { timeout: 180_000 })
  })
})

describe("the JSON depth checks", () => {
  /** The depth of a JSON value, by recursion (the values here are shallow). */
  const depthOf = (value: unknown): number =>
    typeof value === "object" && value !== null ? 1 + Math.max(0, ...Object.values(value).map(depthOf)) : 0
  // strings full of brackets, quotes and backslashes, which the text scan must skip
  const tricky = fc.string({ unit: fc.constantFrom("[", "]", "{", "}", "\"", "\\", "a", "\u00e9", "\ud83d\ude00") })
  const values = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: "small", withCrossShrink: true }, tricky, fc.integer(), fc.boolean(), fc.constant(null), tie("array"), tie("object")),
    array: fc.array(tie("value"), { maxLength: 3 }),
    object: fc.dictionary(tricky, tie("value"), { maxKeys: 3 })
  })).value

  it("the scan of JSON text and the walk of a value agree with the value's depth, at every limit", () => {
    fc.assert(
      fc.property(values, fc.integer({ min: 0, max: 8 }), (value, limit) => {
        const deeper = depthOf(value) > limit
        assert.strictEqual(V.jsonTextTooDeep(JSON.stringify(value), limit), deeper)
        assert.strictEqual(V.jsonValueTooDeep(value, limit), deeper)
      }),
      { seed: SEED, numRuns: 2000 }
    )
  })
})
