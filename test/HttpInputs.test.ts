import { HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { randomUUID } from "node:crypto"
import * as Net from "node:net"
import { uniqueQueue } from "./support/fixtures.js"
import { raw, serverLayer, token } from "./support/http.js"

// Bad input, endpoint by endpoint, against the real routes: every refusal is a 4xx (never a 5xx) with a JSON body
// that has a `_tag` and a `message`, names the field where it is `InvalidInput`, leaks no stack trace or SQL, and
// leaves nothing half-written. Each test collects every case that misbehaves and reports them all at once.

type Method = "GET" | "POST" | "PATCH" | "DELETE"
type Answer = Effect.Effect.Success<ReturnType<typeof raw>>

interface Expected {
  readonly status: number
  /** The `_tag` of the error body; several: any of them. */
  readonly tag: string | ReadonlyArray<string>
  /** The `field` of an `InvalidInput` (or `PayloadTooLarge`, `InvalidProgress`); several: any of them. */
  readonly field?: string | ReadonlyArray<string>
  /** For an `HttpApiDecodeError`: one of its issues has this path (dot-separated). */
  readonly issuePath?: string
}

interface Case extends Expected {
  readonly method: Method
  readonly path: string
  readonly label?: string
  readonly token?: string | undefined
  readonly json?: unknown
  readonly body?: string
  readonly headers?: Record<string, string>
}

/**
 * Internals an error body must not show: stack frames, SQL, connection strings, driver errors, the test schema.
 * (Not a bare /postgres/i: the service's own hint "PostgreSQL jsonb cannot store them" is a deliberate message.)
 */
const leak =
  /\bat .*\.[cm]?[jt]s:\d|node_modules|\bSELECT\b|\bINSERT\s+INTO\b|\bUPDATE\s+\S+\s+SET\b|\bFROM\s+"?jwtest_|postgres(ql)?:\/\/|SqlError|\bpg_|syntax error at or near|violates .* constraint|out of range for type|stack depth limit/i

const DECODE = "HttpApiDecodeError"
const INVALID = "InvalidInput"

const show = (label: string, answer: Answer) =>
  `${label} => ${answer.status} ${answer.body === undefined ? "(empty body)" : JSON.stringify(answer.body)}`.slice(0, 500)

/** The issue paths (dot-separated) of an `HttpApiDecodeError` body. */
const issuePathsOf = (body: { issues?: unknown }): Array<string> =>
  Array.isArray(body.issues) ? body.issues.map((issue: { path?: ReadonlyArray<unknown> }) => (issue.path ?? []).join(".")) : []

/** A field as the services name it (`jobs[3].name`) as a decode issue's path (`jobs.3.name`). */
const asIssuePath = (field: string) => field.replace(/\[(\d+)\]/g, ".$1")

/**
 * What is wrong with `answer` as the refusal `expected` (none: it is right). A refusal naming a field (`InvalidInput`,
 * `InvalidProgress`) may come from the schema instead, which holds the fixed bounds: an `HttpApiDecodeError` with an
 * issue at that field.
 */
const problemsOf = (label: string, answer: Answer, expected: Expected): Array<string> => {
  const problems: Array<string> = []
  const shown = show(label, answer)
  if (answer.status >= 500) return [`5xx for bad input: ${shown}`]
  if (answer.status !== expected.status) problems.push(`expected status ${expected.status}: ${shown}`)
  const body = answer.body
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    problems.push(`the error body is not a JSON object: ${shown}`)
    return problems
  }
  if (!String(answer.headers["content-type"] ?? "").includes("application/json")) {
    problems.push(`the error is not application/json (${answer.headers["content-type"]}): ${shown}`)
  }
  const tags = typeof expected.tag === "string" ? [expected.tag] : expected.tag
  const fields = expected.field === undefined ? undefined : typeof expected.field === "string" ? [expected.field] : expected.field
  const bySchema = body._tag === DECODE && fields !== undefined && (tags.includes(INVALID) || tags.includes("InvalidProgress")) &&
    fields.some((field) => issuePathsOf(body).includes(asIssuePath(field)))
  if (typeof body._tag !== "string") problems.push(`no _tag: ${shown}`)
  else if (!tags.includes(body._tag) && !bySchema) problems.push(`expected _tag ${tags.join(" or ")}: ${shown}`)
  if (typeof body.message !== "string" || body.message.trim() === "") problems.push(`no message: ${shown}`)
  if (leak.test(JSON.stringify(body))) problems.push(`leaks internals: ${shown}`)
  if (fields !== undefined && !bySchema && !fields.includes(body.field)) problems.push(`expected field ${fields.join(" or ")}: ${shown}`)
  if (body._tag === INVALID) {
    if (typeof body.field !== "string" || body.field === "") problems.push(`InvalidInput without a field: ${shown}`)
    else if (typeof body.message === "string" && !body.message.startsWith(body.field)) {
      problems.push(`InvalidInput message does not start with its field: ${shown}`)
    }
  }
  if (expected.issuePath !== undefined && !issuePathsOf(body).includes(expected.issuePath)) {
    problems.push(`expected an issue at ${expected.issuePath}: ${shown}`)
  }
  return problems
}

const labelOf = (c: Case) =>
  c.label ?? `${c.method} ${c.path.slice(0, 90)} ${
    c.body !== undefined ? JSON.stringify(c.body.slice(0, 60)) : c.json === undefined ? "" : JSON.stringify(c.json).slice(0, 120)
  }`

/**
 * The cases of one endpoint called with `token`: a body, and how it is refused (400 `InvalidInput` unless
 * `expected` says otherwise; `expected` may also change the path).
 */
const refusals = (method: Method, path: string, token: string) => (json: unknown, expected: Partial<Case> = {}): Case => ({
  method,
  path,
  token,
  json,
  status: 400,
  tag: INVALID,
  ...expected
})

/** Sends every case (in order) and answers the problems of all of them. */
const problemsOfCases = (cases: ReadonlyArray<Case>) =>
  Effect.gen(function*() {
    const problems: Array<string> = []
    for (const c of cases) {
      const answer = yield* raw(c.method, c.path, { token: c.token, json: c.json, body: c.body, headers: c.headers })
      problems.push(...problemsOf(labelOf(c), answer, c))
    }
    return problems
  })

const expectCases = (cases: ReadonlyArray<Case>) =>
  Effect.map(problemsOfCases(cases), (problems) => {
    if (problems.length > 0) assert.fail(`${problems.length} of ${cases.length} cases misbehaved:\n${problems.join("\n")}`)
  })

/** The user's jobs in `queue` (total of the page). */
const countIn = (bearer: string, queue: string) =>
  Effect.map(raw("GET", `/v1/jobs?queue=${encodeURIComponent(queue)}&limit=100`, { token: bearer }), (answer) => {
    assert.strictEqual(answer.status, 200, show(`list ${queue}`, answer))
    return answer.body.pagination.total as number
  })

const enqueue = (bearer: string, json: unknown) =>
  Effect.map(raw("POST", "/v1/jobs", { token: bearer, json }), (answer) => {
    assert.strictEqual(answer.status, 201, show("enqueue", answer))
    return answer.body.id as string
  })

/** A job of `owner` in a fresh queue, claimed (and started unless `start` is false) by `workerId` over HTTP. */
const heldJob = (owner: string, worker: string, workerId: string, start = true) =>
  Effect.gen(function*() {
    const queue = uniqueQueue("held")
    const id = yield* enqueue(owner, { name: "held", queue })
    const claim = yield* raw("POST", `/v1/workers/${workerId}/claim`, { token: worker, json: { queues: [queue] } })
    assert.deepStrictEqual(claim.body.jobs?.map((j: { id: string }) => j.id), [id], show("claim", claim))
    if (start) {
      const started = yield* raw("PATCH", `/v1/jobs/${id}`, { token: worker, json: { workerId, status: "running" } })
      assert.strictEqual(started.status, 200, show("start", started))
    }
    return id
  })

const jobOf = (bearer: string, id: string) =>
  Effect.map(raw("GET", `/v1/jobs/${id}`, { token: bearer }), (answer) => {
    assert.strictEqual(answer.status, 200, show(`get ${id}`, answer))
    return answer.body as { status: string; version: number; progress: { percent: number }; result: unknown; workerId: string | null }
  })

const nested = (depth: number) => `${"[".repeat(depth)}1${"]".repeat(depth)}`

/** Sends a chunked request (no content-length) on a plain socket and answers the raw HTTP response text. */
const chunked = (port: number, path: string, bearer: string, chunks: ReadonlyArray<string>) =>
  Effect.async<string>((resume) => {
    const socket = Net.connect(port, "127.0.0.1")
    let received = ""
    socket.on("data", (data) => {
      received += data.toString("utf8")
    })
    socket.on("error", (error) => {
      received += `\n[socket error: ${error.message}]`
    })
    socket.on("close", () => resume(Effect.succeed(received)))
    socket.on("connect", () => {
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${bearer}\r\n` +
          `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`
      )
      for (const chunk of chunks) socket.write(`${Buffer.byteLength(chunk).toString(16)}\r\n${chunk}\r\n`)
      socket.write("0\r\n\r\n")
    })
    return Effect.sync(() => socket.destroy())
  }).pipe(Effect.timeoutTo({ duration: "5 seconds", onTimeout: () => "[no answer within 5 s]", onSuccess: (s) => s }))

/** A request with `body` sent as `contentType` (the `raw` helper always sends JSON as application/json). */
const withContentType = (method: Method, path: string, bearer: string, body: string, contentType: string) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const request = HttpClientRequest.make(method)(path).pipe(
      HttpClientRequest.bearerToken(bearer),
      HttpClientRequest.bodyText(body, contentType)
    )
    const response = yield* client.execute(request)
    const text = yield* response.text
    let parsed: any = text
    try {
      parsed = text === "" ? undefined : JSON.parse(text)
    } catch {
      // not JSON: the text
    }
    return { status: response.status, headers: response.headers, body: parsed } as Answer
  }).pipe(Effect.scoped, Effect.orDie)

const parseHttp = (text: string) => {
  const match = /^HTTP\/1\.1 (\d{3})[^\r\n]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(text)
  if (match === null) return undefined
  const headers: Record<string, string> = {}
  for (const line of match[2]!.split("\r\n")) {
    const at = line.indexOf(":")
    if (at > 0) headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim()
  }
  let body: any = match[3]
  try {
    body = JSON.parse(match[3]!)
  } catch {
    // not JSON (or chunked framing): the text
  }
  return { status: Number(match[1]), headers, body } as Answer
}

describe("HTTP API: bad input", () => {
  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("POST /v1/jobs: wrong types, missing fields and non-objects are 400 HttpApiDecodeError; nothing written", () =>
      Effect.gen(function*() {
        const bearer = yield* token("in-types")
        const queue = uniqueQueue("types")
        const job = (fields: Record<string, unknown>) => ({ name: "ok", queue, ...fields })
        const refused = refusals("POST", "/v1/jobs", bearer)
        const post = (json: unknown, issuePath?: string) =>
          refused(json, { tag: DECODE, ...(issuePath === undefined ? {} : { issuePath }) })
        yield* expectCases([
          post({ queue }, "name"),
          post(job({ name: 5 }), "name"),
          post(job({ name: null }), "name"),
          post(job({ name: ["a"] }), "name"),
          post(job({ queue: 5 }), "queue"),
          post(job({ priority: "high" }), "priority"),
          post(job({ priority: null }), "priority"),
          post(job({ maxAttempts: "3" }), "maxAttempts"),
          post(job({ delaySeconds: "5" }), "delaySeconds"),
          post(job({ timeoutSeconds: true }), "timeoutSeconds"),
          post(job({ runAt: 1_800_000_000_000 }), "runAt"),
          post(job({ idempotencyKey: 17 }), "idempotencyKey"),
          post(job({ backoff: "exponential" }), "backoff"),
          post(job({ backoff: { multiplier: "2" } }), "backoff.multiplier"),
          post(job({ backoff: { delaySeconds: "1" } }), "backoff.delaySeconds"),
          post([]),
          post([job({})]),
          post("render"),
          post(42),
          { method: "POST", path: "/v1/jobs", token: bearer, label: "POST /v1/jobs (no body)", status: 400, tag: DECODE },
          { method: "POST", path: "/v1/jobs", token: bearer, body: "null", status: 400, tag: DECODE }
        ])
        assert.strictEqual(yield* countIn(bearer, queue), 0)
      }))

    it.effect("POST /v1/jobs: out-of-range and malformed values are 400 InvalidInput naming the field; nothing written", () =>
      Effect.gen(function*() {
        const bearer = yield* token("in-range")
        const queue = uniqueQueue("range")
        const job = (fields: Record<string, unknown>) => ({ name: "ok", queue, ...fields })
        const refused = refusals("POST", "/v1/jobs", bearer)
        const post = (json: unknown, field: string, status = 400, tag = INVALID) => refused(json, { field, status, tag })
        yield* expectCases([
          post(job({ name: "" }), "name"),
          post(job({ name: "   " }), "name"),
          post(job({ name: "n".repeat(201) }), "name"),
          post(job({ name: "a\u0000b" }), "name"),
          post(job({ queue: "" }), "queue"),
          post(job({ queue: "q".repeat(201) }), "queue"),
          post(job({ priority: 2 ** 31 }), "priority"),
          post(job({ priority: -(2 ** 31) - 1 }), "priority"),
          post(job({ priority: 1e300 }), "priority"),
          post(job({ priority: 1.5 }), "priority"),
          post(job({ maxAttempts: 0 }), "maxAttempts"),
          post(job({ maxAttempts: 1001 }), "maxAttempts"),
          post(job({ maxAttempts: -1 }), "maxAttempts"),
          post(job({ maxAttempts: 2.5 }), "maxAttempts"),
          post(job({ delaySeconds: -1 }), "delaySeconds"),
          post(job({ delaySeconds: -0.001 }), "delaySeconds"),
          post(job({ timeoutSeconds: 0 }), "timeoutSeconds"),
          post(job({ timeoutSeconds: -5 }), "timeoutSeconds"),
          post(job({ runAt: "tomorrow" }), "runAt"),
          post(job({ runAt: "" }), "runAt"),
          post(job({ runAt: "2030-13-45T00:00:00Z" }), "runAt"),
          post(job({ runAt: "2030-01-01T00:00:00+99:00" }), "runAt"),
          post(job({ runAt: "2030-01-01T00:00:00Z", delaySeconds: 5 }), "delaySeconds"),
          post(job({ runAt: "2030-01-01T00:00:00Z", delaySeconds: 0 }), "delaySeconds"),
          post(job({ idempotencyKey: "" }), "idempotencyKey"),
          post(job({ idempotencyKey: "k".repeat(201) }), "idempotencyKey"),
          post(job({ backoff: { delaySeconds: -1 } }), "backoff.delaySeconds"),
          post(job({ backoff: { delaySeconds: 8 * 24 * 3600 } }), "backoff.delaySeconds"),
          post(job({ backoff: { maxDelaySeconds: -1 } }), "backoff.maxDelaySeconds"),
          post(job({ backoff: { delaySeconds: 60, maxDelaySeconds: 1 } }), "backoff.maxDelaySeconds"),
          post(job({ backoff: { multiplier: 0.5 } }), "backoff.multiplier"),
          post(job({ backoff: { multiplier: 101 } }), "backoff.multiplier"),
          post(job({ payload: "a\u0000b" }), "payload"),
          post(job({ payload: { text: "\ud800" } }), "payload"),
          {
            method: "POST",
            path: "/v1/jobs",
            token: bearer,
            label: "POST /v1/jobs payload nested 6,000 deep",
            body: `{"name":"deep","queue":${JSON.stringify(queue)},"payload":${nested(6000)}}`,
            status: 400,
            tag: INVALID,
            // refused by the body's depth, before it is parsed
            field: "body"
          }
        ])
        assert.strictEqual(yield* countIn(bearer, queue), 0)
        // the edges themselves are fine
        const edge = yield* raw("POST", "/v1/jobs", {
          token: bearer,
          json: job({ name: "n".repeat(200), priority: 2 ** 31 - 1, maxAttempts: 1000, timeoutSeconds: 0.001 })
        })
        assert.strictEqual(edge.status, 201, show("edges", edge))
        assert.strictEqual(yield* countIn(bearer, queue), 1)
      }))

    it.effect("POST /v1/jobs and /batch: times and durations beyond what the database stores are 400, not 500", () =>
      Effect.gen(function*() {
        const bearer = yield* token("in-huge")
        const queue = uniqueQueue("huge")
        const job = (fields: Record<string, unknown>) => ({ name: "ok", queue, ...fields })
        const refused = refusals("POST", "/v1/jobs", bearer)
        const post = (json: unknown, field: string) => refused(json, { field })
        yield* expectCases([
          // about 317,000 years: past PostgreSQL's last timestamp (294276 AD)
          post(job({ delaySeconds: 1e13 }), "delaySeconds"),
          post(job({ delaySeconds: 1e300 }), "delaySeconds"),
          // 1e20 ms does not fit timeout_ms (bigint)
          post(job({ timeoutSeconds: 1e17 }), "timeoutSeconds"),
          post(job({ timeoutSeconds: 1e300 }), "timeoutSeconds"),
          // year 0 is a valid JavaScript date but not a PostgreSQL one
          post(job({ runAt: "0000-01-01T00:00:00Z" }), "runAt"),
          {
            method: "POST",
            path: "/v1/jobs/batch",
            token: bearer,
            json: { jobs: [job({}), job({}), job({ delaySeconds: 1e13 })] },
            status: 400,
            tag: INVALID,
            field: "jobs[2].delaySeconds"
          }
        ])
        assert.strictEqual(yield* countIn(bearer, queue), 0)
      }))

    it.effect("POST /v1/jobs/batch: bad jobs are 400 naming jobs[i].field; a refused batch writes none of its jobs", () =>
      Effect.gen(function*() {
        const bearer = yield* token("in-batch")
        const queue = uniqueQueue("batch")
        const good = (i: number) => ({ name: `good-${i}`, queue, payload: { i } })
        const withBad = (at: number, bad: Record<string, unknown>, size = 5) => ({
          jobs: Array.from({ length: size }, (_, i) => i === at ? { ...good(i), ...bad } : good(i))
        })
        const post = refusals("POST", "/v1/jobs/batch", bearer)
        yield* expectCases([
          post({}, { tag: DECODE, issuePath: "jobs" }),
          post({ jobs: {} }, { tag: DECODE, issuePath: "jobs" }),
          post({ jobs: "all" }, { tag: DECODE, issuePath: "jobs" }),
          post([good(0)], { tag: DECODE }),
          post({ jobs: [good(0), 5] }, { tag: DECODE, issuePath: "jobs.1" }),
          post(withBad(3, { name: 5 }), { tag: DECODE, issuePath: "jobs.3.name" }),
          post(withBad(2, { priority: "high" }), { tag: DECODE, issuePath: "jobs.2.priority" }),
          post({ jobs: [] }, { field: "jobs" }),
          post({ jobs: Array.from({ length: 1001 }, (_, i) => good(i)) }, { field: "jobs" }),
          post(withBad(3, { name: "" }), { field: "jobs[3].name" }),
          post(withBad(0, { name: "n".repeat(201) }), { field: "jobs[0].name" }),
          post(withBad(1, { priority: 2 ** 31 }), { field: "jobs[1].priority" }),
          post(withBad(4, { maxAttempts: 0 }), { field: "jobs[4].maxAttempts" }),
          post(withBad(4, { maxAttempts: 1001 }), { field: "jobs[4].maxAttempts" }),
          post(withBad(2, { delaySeconds: -1 }), { field: "jobs[2].delaySeconds" }),
          post(withBad(2, { timeoutSeconds: 0 }), { field: "jobs[2].timeoutSeconds" }),
          post(withBad(0, { runAt: "2030-01-01T00:00:00Z", delaySeconds: 5 }), { field: "jobs[0].delaySeconds" }),
          post(withBad(3, { runAt: "soon" }), { field: "jobs[3].runAt" }),
          post(withBad(1, { backoff: { multiplier: 0 } }), { field: "jobs[1].backoff.multiplier" }),
          post(withBad(1, { backoff: { delaySeconds: -1 } }), { field: "jobs[1].backoff.delaySeconds" }),
          post(withBad(2, { payload: "\u0000" }), { field: "jobs[2].payload" }),
          post(withBad(2, { idempotencyKey: "" }), { field: "jobs[2].idempotencyKey" }),
          // the last of a full batch
          post(withBad(999, { name: "" }, 1000), { field: "jobs[999].name" })
        ])
        // none of the good jobs of the refused batches was written
        assert.strictEqual(yield* countIn(bearer, queue), 0)
        const admin = yield* raw("GET", `/v1/jobs?queue=${queue}&limit=100`, { token: yield* token("root", ["admin"]) })
        assert.strictEqual(admin.body.pagination.total, 0)
        // and a good batch is written whole
        const ok = yield* raw("POST", "/v1/jobs/batch", { token: bearer, json: { jobs: [good(0), good(1)] } })
        assert.strictEqual(ok.status, 201, show("good batch", ok))
        assert.strictEqual(yield* countIn(bearer, queue), 2)
      }))

    it.effect("GET /v1/jobs: unknown statuses, bad page, limit, cursor and filters are 400", () =>
      Effect.gen(function*() {
        const bearer = yield* token("in-list")
        const get = (query: string, expected: Partial<Expected>) =>
          refusals("GET", `/v1/jobs?${query}`, bearer)(undefined, expected)
        yield* expectCases([
          get("status=bogus", { field: "status" }),
          get("status=pending,bogus", { field: "status" }),
          get("status=PENDING%3B%20DROP%20TABLE%20jobs", { field: "status" }),
          get("limit=x", { tag: DECODE, issuePath: "limit" }),
          get("limit=", { tag: DECODE, issuePath: "limit" }),
          get("limit=0", { field: "limit" }),
          get("limit=101", { field: "limit" }),
          get("limit=1001", { field: "limit" }),
          get("limit=-1", { field: "limit" }),
          get("limit=1.5", { field: "limit" }),
          get("limit=NaN", { field: "limit" }),
          get("limit=Infinity", { field: "limit" }),
          get("limit=1&limit=2", { tag: DECODE, issuePath: "limit" }),
          get("page=0", { field: "page" }),
          get("page=-1", { field: "page" }),
          get("page=1.5", { field: "page" }),
          get("page=1e400", { field: "page" }),
          get("page=first", { tag: DECODE, issuePath: "page" }),
          get("queue=", { field: "queue" }),
          get(`queue=${"q".repeat(201)}`, { field: "queue" }),
          get("queue=a%00b", { field: "queue" }),
          get("name=", { field: "name" }),
          get(`name=${"n".repeat(201)}`, { field: "name" }),
          get("cursor=zzz", { field: "cursor" }),
          get(`cursor=${Buffer.from("not-a-uuid").toString("base64url")}`, { field: "cursor" }),
          get(`cursor=${Buffer.from(randomUUID()).toString("base64url")}&limit=0`, { field: "limit" }),
          get("cursor=x&status=bogus", { field: "status" })
        ])
        // the edges are fine
        assert.strictEqual((yield* raw("GET", "/v1/jobs?limit=100&page=1&status=queued,active", { token: bearer })).status, 200)
        assert.strictEqual((yield* raw("GET", "/v1/jobs?limit=1", { token: bearer })).status, 200)
      }))

    it.effect("POST /v1/jobs/wait: bad, empty, too many or non-UUID ids, bad mode and timeout are 400; unknown ids 404", () =>
      Effect.gen(function*() {
        const bearer = yield* token("in-wait")
        const own = yield* enqueue(bearer, { name: "waited", queue: uniqueQueue("wait") })
        const post = refusals("POST", "/v1/jobs/wait", bearer)
        yield* expectCases([
          post({ mode: "all" }, { tag: DECODE, issuePath: "ids" }),
          post({ ids: own }, { tag: DECODE, issuePath: "ids" }),
          post({ ids: [own, 5] }, { tag: DECODE, issuePath: "ids.1" }),
          post({ ids: [own], mode: "some" }, { tag: DECODE, issuePath: "mode" }),
          post({ ids: [own], mode: 1 }, { tag: DECODE, issuePath: "mode" }),
          post({ ids: [own], timeoutSeconds: "5" }, { tag: DECODE, issuePath: "timeoutSeconds" }),
          post([own], { tag: DECODE }),
          post({ ids: [] }, { field: "ids" }),
          post({ ids: ["not-a-uuid"] }, { field: "ids[0]" }),
          post({ ids: [own, "not-a-uuid"], timeoutSeconds: 0 }, { field: "ids[1]" }),
          post({ ids: [`${own}0`], timeoutSeconds: 0 }, { field: "ids[0]" }),
          post({ ids: [""], timeoutSeconds: 0 }, { field: "ids[0]" }),
          post({ ids: Array.from({ length: 1001 }, () => randomUUID()), timeoutSeconds: 0 }, { field: "ids" }),
          post({ ids: Array.from({ length: 1001 }, () => own), timeoutSeconds: 0 }, { field: "ids" }),
          post({ ids: [own], timeoutSeconds: -1 }, { field: "timeoutSeconds" }),
          post({ ids: [own, randomUUID()], timeoutSeconds: 0 }, { status: 404, tag: "JobNotFound" })
        ])
        const ok = yield* raw("POST", "/v1/jobs/wait", { token: bearer, json: { ids: [own], timeoutSeconds: 0 } })
        assert.strictEqual(ok.status, 200, show("wait", ok))
      }))

    it.effect("job paths: non-UUID ids are 400 on every endpoint, unknown UUIDs 404; bad afterVersion 400", () =>
      Effect.gen(function*() {
        const bearer = yield* token("in-paths")
        const worker = yield* token("in-paths-worker", ["worker"])
        const own = yield* enqueue(bearer, { name: "mine", queue: uniqueQueue("paths") })
        const unknown = randomUUID()
        const badIds = ["not-a-uuid", `${own}x`, own.replace(/-/g, ""), "%20", "a%00b", "1"]
        const cases: Array<Case> = []
        /** The six job-path endpoints on `id`, each expecting `expected` (users' as the user, workers' as the worker). */
        const onEveryJobPath = (id: string, expected: { readonly status: number; readonly tag: string; readonly field?: string }) => {
          const asUser = { token: bearer, ...expected } as const
          const asWorker = { token: worker, ...expected } as const
          return [
            { method: "GET", path: `/v1/jobs/${id}`, ...asUser },
            { method: "GET", path: `/v1/jobs/${id}/status`, ...asUser },
            { method: "POST", path: `/v1/jobs/${id}/cancel`, ...asUser },
            { method: "DELETE", path: `/v1/jobs/${id}`, ...asUser },
            { method: "PATCH", path: `/v1/jobs/${id}`, json: { workerId: "in-paths-worker:w-paths", status: "running" }, ...asWorker },
            { method: "POST", path: `/v1/jobs/${id}/progress`, json: { workerId: "in-paths-worker:w-paths", percent: 5 }, ...asWorker }
          ] as Array<Case>
        }
        for (const id of badIds) cases.push(...onEveryJobPath(id, { status: 400, tag: INVALID, field: "id" }))
        cases.push(
          { method: "GET", path: "/v1/jobs/batch", token: bearer, status: 400, tag: INVALID, field: "id" },
          ...onEveryJobPath(unknown, { status: 404, tag: "JobNotFound" })
        )
        for (const suffix of ["", "/status"]) {
          for (const [query, expected] of [
            ["afterVersion=-1", { tag: INVALID, field: "afterVersion" }],
            ["afterVersion=1.5", { tag: INVALID, field: "afterVersion" }],
            ["afterVersion=NaN", { tag: INVALID, field: "afterVersion" }],
            ["afterVersion=x", { tag: DECODE, issuePath: "afterVersion" }],
            ["afterVersion=", { tag: DECODE, issuePath: "afterVersion" }]
          ] as const) {
            cases.push({ method: "GET", path: `/v1/jobs/${own}${suffix}?${query}`, token: bearer, status: 400, ...expected })
          }
        }
        yield* expectCases(cases)
        // a malformed or negative Prefer is ignored: the job is answered at once, without Preference-Applied
        for (const prefer of ["wait=abc", "wait=-5", "wait", "wait=9999999999", "respond-async, wait=x"]) {
          const answer = yield* raw("GET", `/v1/jobs/${own}/status`, { token: bearer, headers: { prefer } })
          assert.strictEqual(answer.status, 200, show(`prefer ${prefer}`, answer))
          // the header is only there when a wait was applied
          assert.isUndefined(answer.headers["preference-applied"], prefer)
        }
        // none of it touched the job
        const job = yield* jobOf(bearer, own)
        assert.strictEqual(job.status, "pending")
        assert.strictEqual(job.version, 1)
      }))

    it.effect("another user's job is 404 on get, status, long-poll, cancel, delete and wait, and stays untouched", () =>
      Effect.gen(function*() {
        const alice = yield* token("in-alice")
        const mallory = yield* token("in-mallory")
        const id = yield* enqueue(alice, { name: "private", queue: uniqueQueue("foreign") })
        const notFound = { token: mallory, status: 404, tag: "JobNotFound" } as const
        yield* expectCases([
          { method: "GET", path: `/v1/jobs/${id}`, ...notFound },
          { method: "GET", path: `/v1/jobs/${id}/status`, ...notFound },
          { method: "GET", path: `/v1/jobs/${id}?afterVersion=0`, ...notFound },
          { method: "POST", path: `/v1/jobs/${id}/cancel`, ...notFound },
          { method: "DELETE", path: `/v1/jobs/${id}`, ...notFound },
          { method: "POST", path: "/v1/jobs/wait", json: { ids: [id], timeoutSeconds: 0 }, ...notFound },
          { method: "POST", path: "/v1/jobs/wait", json: { ids: [id], mode: "any", timeoutSeconds: 5 }, ...notFound }
        ])
        // a long-poll on a foreign job answers 404 (the job is read before any wait), with no wait applied
        const polled = yield* raw("GET", `/v1/jobs/${id}/status`, { token: mallory, headers: { prefer: "wait=10" } })
        assert.strictEqual(polled.status, 404)
        assert.isUndefined(polled.headers["preference-applied"])
        // and the uppercase spelling of the id is the same job, still not hers
        const upper = yield* raw("GET", `/v1/jobs/${id.toUpperCase()}`, { token: mallory })
        assert.deepStrictEqual(problemsOf("uppercase id", upper, { status: 404, tag: "JobNotFound" }), [])
        const job = yield* jobOf(alice, id)
        assert.strictEqual(job.status, "pending")
        assert.strictEqual(job.version, 1)
        const listed = yield* raw("GET", "/v1/jobs?limit=100", { token: mallory })
        assert.notInclude(listed.body.jobs.map((j: { id: string }) => j.id), id)
      }))

    it.effect("every endpoint is 401 without (or with a malformed) token; worker endpoints are 403 without the role", () =>
      Effect.gen(function*() {
        const user = yield* token("in-auth")
        const queue = uniqueQueue("auth")
        const id = yield* enqueue(user, { name: "auth", queue })
        const endpoints: ReadonlyArray<{ method: Method; path: string; json?: unknown; worker?: boolean }> = [
          { method: "POST", path: "/v1/jobs", json: { name: "x", queue } },
          { method: "POST", path: "/v1/jobs/batch", json: { jobs: [{ name: "x", queue }] } },
          { method: "GET", path: "/v1/jobs" },
          { method: "POST", path: "/v1/jobs/wait", json: { ids: [id], timeoutSeconds: 0 } },
          { method: "GET", path: `/v1/jobs/${id}` },
          { method: "GET", path: `/v1/jobs/${id}/status` },
          { method: "POST", path: `/v1/jobs/${id}/cancel` },
          { method: "DELETE", path: `/v1/jobs/${id}` },
          { method: "POST", path: "/v1/workers/w-auth/claim", json: { queues: [queue] }, worker: true },
          { method: "PATCH", path: "/v1/workers/w-auth", worker: true },
          { method: "PATCH", path: `/v1/jobs/${id}`, json: { workerId: "w-auth", status: "running" }, worker: true },
          { method: "POST", path: `/v1/jobs/${id}/progress`, json: { workerId: "w-auth", percent: 5 }, worker: true }
        ]
        const cases: Array<Case> = []
        for (const e of endpoints) {
          const base = { method: e.method, path: e.path, json: e.json }
          cases.push(
            { ...base, label: `${e.method} ${e.path} without a token`, status: 401, tag: "Unauthorized" },
            { ...base, label: `${e.method} ${e.path} with a malformed token`, token: "not.a.jwt", status: 401, tag: "Unauthorized" }
          )
          if (e.worker === true) {
            cases.push({ ...base, label: `${e.method} ${e.path} as a plain user`, token: user, status: 403, tag: "Forbidden" })
          }
        }
        // authentication comes before the body is read: no token and a broken body is still 401
        cases.push(
          { method: "POST", path: "/v1/jobs", body: "{not json", status: 401, tag: "Unauthorized" },
          { method: "POST", path: "/v1/jobs", json: { name: 5, queue }, status: 401, tag: "Unauthorized" }
        )
        yield* expectCases(cases)
        const forbidden = yield* raw("POST", "/v1/workers/w-auth/claim", { token: user, json: {} })
        assert.strictEqual(forbidden.body.required, "worker")
        // none of the refused calls changed the job
        const job = yield* jobOf(user, id)
        assert.strictEqual(job.status, "pending")
        assert.strictEqual(job.version, 1)
        assert.strictEqual(yield* countIn(yield* token("root", ["admin"]), queue), 1)
      }))

    it.effect("malformed JSON bodies are 400 with a JSON error on every endpoint that takes a body", () =>
      Effect.gen(function*() {
        const user = yield* token("in-json")
        const worker = yield* token("in-json-worker", ["worker"])
        const id = randomUUID()
        const targets: ReadonlyArray<{ method: Method; path: string; token: string }> = [
          { method: "POST", path: "/v1/jobs", token: user },
          { method: "POST", path: "/v1/jobs/batch", token: user },
          { method: "POST", path: "/v1/jobs/wait", token: user },
          { method: "POST", path: "/v1/workers/in-json-worker:w-json/claim", token: worker },
          { method: "PATCH", path: `/v1/jobs/${id}`, token: worker },
          { method: "POST", path: `/v1/jobs/${id}/progress`, token: worker }
        ]
        const cases: Array<Case> = []
        for (const target of targets) {
          for (const body of ["{not json", "{\"name\":", "[1,2", "{'name':'x'}", "nul", "{\"a\":1}}"]) {
            cases.push({ ...target, body, status: 400, tag: [DECODE, INVALID] })
          }
        }
        yield* expectCases(cases)
      }))

    it.effect("POST /v1/workers/{workerId}/claim: bad bodies and worker ids are 400 and claim nothing", () =>
      Effect.gen(function*() {
        const user = yield* token("in-claim")
        const worker = yield* token("in-claim-worker", ["worker"])
        // a blank worker id is no worker token's to use: only an admin's call reaches its validation
        const admin = yield* token("root", ["admin"])
        const queue = uniqueQueue("claim")
        const id = yield* enqueue(user, { name: "claimable", queue })
        const workerId = `in-claim-worker:w-refused-${Date.now().toString(36)}`
        const refused = refusals("POST", `/v1/workers/${workerId}/claim`, worker)
        const claim = (json: unknown, expected: Partial<Expected>, path?: string) =>
          refused(json, path === undefined ? expected : { ...expected, path })
        const q = { queues: [queue] }
        yield* expectCases([
          { method: "POST", path: `/v1/workers/${workerId}/claim`, token: worker, status: 400, tag: DECODE },
          claim([queue], { tag: DECODE }),
          claim({ queues: queue }, { tag: DECODE, issuePath: "queues" }),
          claim({ queues: [queue, 5] }, { tag: DECODE, issuePath: "queues.1" }),
          claim({ ...q, names: "claimable" }, { tag: DECODE, issuePath: "names" }),
          claim({ ...q, limit: "x" }, { tag: DECODE, issuePath: "limit" }),
          claim({ ...q, waitSeconds: "5" }, { tag: DECODE, issuePath: "waitSeconds" }),
          claim({ ...q, limit: 0 }, { field: "limit" }),
          claim({ ...q, limit: 1001 }, { field: "limit" }),
          claim({ ...q, limit: -1 }, { field: "limit" }),
          claim({ ...q, limit: 1.5 }, { field: "limit" }),
          claim({ ...q, waitSeconds: -1 }, { field: "waitSeconds" }),
          claim({ queues: [] }, { field: "queues" }),
          claim({ queues: [""] }, { field: "queues[0]" }),
          claim({ queues: [queue, "q".repeat(201)] }, { field: "queues[1]" }),
          claim({ queues: Array.from({ length: 101 }, (_, i) => `${queue}-${i}`) }, { field: "queues" }),
          claim({ ...q, names: [] }, { field: "names" }),
          claim({ ...q, names: ["n".repeat(201)] }, { field: "names[0]" }),
          refusals("POST", "/v1/workers/%20/claim", admin)(q, { field: "workerId" }),
          claim(q, { field: "workerId" }, "/v1/workers/in-claim-worker:a%00b/claim")
        ])
        // nothing was claimed, and the refused worker was not registered
        const job = yield* jobOf(user, id)
        assert.strictEqual(job.status, "pending")
        assert.strictEqual(job.version, 1)
        const beat = yield* raw("PATCH", `/v1/workers/${workerId}`, { token: worker })
        assert.deepStrictEqual(problemsOf("heartbeat of a refused worker", beat, { status: 404, tag: "WorkerNotFound" }), [])
        // a worker id longer than the service takes is 400 naming it; the router lets it through to say so
        const long = yield* raw("POST", `/v1/workers/in-claim-worker:${"w".repeat(300)}/claim`, { token: worker, json: q })
        assert.deepStrictEqual(problemsOf("long worker id", long, { status: 400, tag: INVALID, field: "workerId" }), [])
        // and one so long the router refuses it is a 4xx, never a 5xx
        const huge = yield* raw("POST", `/v1/workers/in-claim-worker:${"w".repeat(1500)}/claim`, { token: worker, json: q })
        assert.isAtLeast(huge.status, 400, show("huge worker id", huge))
        assert.isBelow(huge.status, 500, show("huge worker id", huge))
        assert.strictEqual((yield* jobOf(user, id)).status, "pending")
        // the longest worker id the service takes works over HTTP
        const longest = `in-claim-worker:${"w".repeat(200 - "in-claim-worker:".length)}`
        const claimed = yield* raw("POST", `/v1/workers/${longest}/claim`, { token: worker, json: q })
        assert.strictEqual(claimed.status, 200, show("200-character worker id", claimed))
        const held = yield* jobOf(user, id)
        assert.deepStrictEqual([held.status, held.workerId], ["claimed", longest])
      }))

    it.effect("PATCH /v1/workers/{workerId}: unknown worker 404 WorkerNotFound, blank or NUL ids 400", () =>
      Effect.gen(function*() {
        const worker = yield* token("in-beat", ["worker"])
        const unknown = `in-beat:w-unknown-${Date.now().toString(36)}`
        yield* expectCases([
          { method: "PATCH", path: `/v1/workers/${unknown}`, token: worker, status: 404, tag: "WorkerNotFound" },
          // a blank worker id is no worker token's to use: only an admin's call reaches its validation
          { method: "PATCH", path: "/v1/workers/%20", token: yield* token("root", ["admin"]), status: 400, tag: INVALID, field: "workerId" },
          { method: "PATCH", path: "/v1/workers/in-beat:a%00b", token: worker, status: 400, tag: INVALID, field: "workerId" }
        ])
        const answer = yield* raw("PATCH", `/v1/workers/${unknown}`, { token: worker })
        assert.strictEqual(answer.body.workerId, unknown)
      }))

    it.effect("PATCH /v1/jobs/{id}: bad statuses, missing fields and bad errors are 400; the job is left as it was", () =>
      Effect.gen(function*() {
        const user = yield* token("in-update")
        const worker = yield* token("in-update-worker", ["worker"])
        const workerId = "in-update-worker:w-update"
        const id = yield* heldJob(user, worker, workerId)
        const before = yield* jobOf(user, id)
        const patch = refusals("PATCH", `/v1/jobs/${id}`, worker)
        yield* expectCases([
          { method: "PATCH", path: `/v1/jobs/${id}`, token: worker, status: 400, tag: DECODE },
          patch({}, { tag: DECODE }),
          // without a worker id only an external job is reported on: this one is held
          patch({ status: "completed" }, { tag: INVALID, field: "workerId" }),
          patch({ workerId: 5, status: "completed" }, { tag: DECODE, issuePath: "workerId" }),
          patch({ workerId }, { tag: DECODE, issuePath: "status" }),
          patch({ workerId, status: "done" }, { tag: DECODE, issuePath: "status" }),
          patch({ workerId, status: "pending" }, { tag: DECODE, issuePath: "status" }),
          patch({ workerId, status: "COMPLETED" }, { tag: DECODE, issuePath: "status" }),
          patch({ workerId, status: "failed", error: "boom" }, { tag: DECODE, issuePath: "error" }),
          patch({ workerId, status: "failed", error: {} }, { tag: DECODE, issuePath: "error.message" }),
          patch({ workerId, status: "failed", error: { message: 5 } }, { tag: DECODE, issuePath: "error.message" }),
          patch({ workerId, status: "failed", error: { message: "x", retryable: "yes" } }, {
            tag: DECODE,
            issuePath: "error.retryable"
          }),
          patch({ workerId, status: "completed", message: 5 }, { tag: DECODE, issuePath: "message" }),
          patch({ workerId, status: "failed" }, { field: "error" }),
          patch({ workerId: "", status: "completed" }, { field: "workerId", token: yield* token("root", ["admin"]) }),
          patch({ workerId: `in-update-worker:${"w".repeat(201)}`, status: "completed" }, { field: "workerId" }),
          patch({ workerId, status: "completed", message: "m".repeat(2001) }, { field: "message" }),
          patch({ workerId, status: "completed", result: { s: "a\u0000" } }, { field: "result" }),
          patch({ workerId, status: "failed", error: { message: "" } }, { field: ["error", "error.message"] }),
          patch({ workerId, status: "failed", error: { message: "x", code: "c".repeat(201) } }, {
            field: ["code", "error.code"]
          }),
          // not this worker's job, and not a step the job can take
          patch({ workerId: "in-update-worker:w-someone-else", status: "completed" }, { status: 409, tag: "NotJobHolder" }),
          patch({ workerId, status: "running" }, { status: 409, tag: "InvalidTransition" })
        ])
        const after = yield* jobOf(user, id)
        assert.strictEqual(after.status, "running")
        assert.strictEqual(after.version, before.version)
        assert.isNull(after.result)
      }))

    it.effect("PATCH /v1/jobs/{id}: a bad error.message or error.code is InvalidInput naming it as the body spells it", () =>
      Effect.gen(function*() {
        const user = yield* token("in-update-fields")
        const worker = yield* token("in-update-fields-worker", ["worker"])
        const workerId = "in-update-fields-worker:w-update-fields"
        const id = yield* heldJob(user, worker, workerId)
        const refused = refusals("PATCH", `/v1/jobs/${id}`, worker)
        const patch = (json: unknown, field: string) => refused(json, { field })
        // the HTTP layer renames the service's fields to the body's (delay -> delaySeconds); these are not renamed
        yield* expectCases([
          patch({ workerId, status: "failed", error: { message: "" } }, "error.message"),
          patch({ workerId, status: "failed", error: { message: "   " } }, "error.message"),
          patch({ workerId, status: "failed", error: { message: "m".repeat(10_001) } }, "error.message"),
          patch({ workerId, status: "failed", error: { message: "x", code: "" } }, "error.code"),
          patch({ workerId, status: "failed", error: { message: "x", code: "c".repeat(201) } }, "error.code")
        ])
        assert.strictEqual((yield* jobOf(user, id)).status, "running")
      }))

    it.effect("POST /v1/jobs/{id}/progress: wrong types, bad steps, messages and data are refused; progress stays put", () =>
      Effect.gen(function*() {
        const user = yield* token("in-progress")
        const worker = yield* token("in-progress-worker", ["worker"])
        const workerId = "in-progress-worker:w-progress"
        const id = yield* heldJob(user, worker, workerId)
        const before = yield* jobOf(user, id)
        const report = refusals("POST", `/v1/jobs/${id}/progress`, worker)
        yield* expectCases([
          { method: "POST", path: `/v1/jobs/${id}/progress`, token: worker, status: 400, tag: DECODE },
          report({ workerId }, { tag: DECODE, issuePath: "percent" }),
          report({ workerId, percent: "50" }, { tag: DECODE, issuePath: "percent" }),
          report({ workerId, percent: null }, { tag: DECODE, issuePath: "percent" }),
          report({ workerId, percent: [50] }, { tag: DECODE, issuePath: "percent" }),
          report({ percent: 50 }, { tag: INVALID, field: "workerId" }),
          report({ workerId: 7, percent: 50 }, { tag: DECODE, issuePath: "workerId" }),
          report({ workerId, percent: 50, force: "yes" }, { tag: DECODE, issuePath: "force" }),
          report({ workerId, percent: 50, step: 5 }, { tag: DECODE, issuePath: "step" }),
          report({ workerId, percent: 50, message: {} }, { tag: DECODE, issuePath: "message" }),
          report({ workerId, percent: 50, step: "s".repeat(201) }, { tag: [INVALID, "InvalidProgress"], field: "step" }),
          report({ workerId, percent: 50, step: "" }, { tag: [INVALID, "InvalidProgress"], field: "step" }),
          report({ workerId, percent: 50, message: "m".repeat(2001) }, { tag: [INVALID, "InvalidProgress"], field: "message" }),
          report({ workerId, percent: 50, data: { s: "\u0000" } }, { tag: [INVALID, "InvalidProgress"], field: "data" }),
          report({ workerId, percent: 50, data: "d".repeat(65 * 1024) }, { status: 413, tag: "PayloadTooLarge", field: "data" }),
          report({ workerId: "", percent: 50 }, { field: "workerId", token: yield* token("root", ["admin"]) }),
          report({ workerId: "in-progress-worker:w-someone-else", percent: 50, force: true }, { status: 409, tag: "NotJobHolder" })
        ])
        const after = yield* jobOf(user, id)
        assert.strictEqual(after.progress.percent, 0)
        assert.strictEqual(after.version, before.version)
        // out-of-range percents are clamped, not refused
        const clamped = yield* raw("POST", `/v1/jobs/${id}/progress`, {
          token: worker,
          json: { workerId, percent: 150, force: true }
        })
        assert.strictEqual(clamped.status, 200, show("percent 150", clamped))
        assert.strictEqual(clamped.body.percent, 100)
      }))
  })

  layer(serverLayer({ maxBodyBytes: 4096, maxPayloadBytes: 1024 }), { excludeTestServices: true, timeout: 60_000 })(
    (it) => {
      it.effect("a body over maxBodyBytes is 413 PayloadTooLarge on every endpoint that takes one; nothing written", () =>
        Effect.gen(function*() {
          const user = yield* token("in-413")
          const worker = yield* token("in-413-worker", ["worker"])
          const queue = uniqueQueue("big")
          const id = yield* heldJob(user, worker, "in-413-worker:w-413")
          const big = "b".repeat(5000)
          const tooLarge = { status: 413, tag: "PayloadTooLarge", field: "body" } as const
          const cases: ReadonlyArray<Case> = [
            { method: "POST", path: "/v1/jobs", token: user, json: { name: "big", queue, payload: big }, ...tooLarge },
            { method: "POST", path: "/v1/jobs", token: user, json: { name: big, queue }, ...tooLarge },
            {
              method: "POST",
              path: "/v1/jobs/batch",
              token: user,
              json: { jobs: Array.from({ length: 100 }, (_, i) => ({ name: `n${i}`, queue })) },
              ...tooLarge
            },
            {
              method: "POST",
              path: "/v1/jobs/wait",
              token: user,
              json: { ids: Array.from({ length: 200 }, () => randomUUID()) },
              ...tooLarge
            },
            { method: "POST", path: "/v1/workers/in-413-worker:w-413/claim", token: worker, json: { queues: [queue, big] }, ...tooLarge },
            {
              method: "PATCH",
              path: `/v1/jobs/${id}`,
              token: worker,
              json: { workerId: "in-413-worker:w-413", status: "completed", result: big },
              ...tooLarge
            },
            {
              method: "POST",
              path: `/v1/jobs/${id}/progress`,
              token: worker,
              json: { workerId: "in-413-worker:w-413", percent: 50, data: big },
              ...tooLarge
            },
            // malformed as well as too large: still 413, the body is never parsed
            { method: "POST", path: "/v1/jobs", token: user, body: `{not json ${big}`, ...tooLarge }
          ]
          yield* expectCases(cases)
          const answer = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "big", queue, payload: big } })
          assert.strictEqual(answer.body.limit, 4096)
          assert.isAbove(answer.body.size, 4096)
          assert.strictEqual(yield* countIn(user, queue), 0)
          const job = yield* jobOf(user, id)
          assert.strictEqual(job.status, "running")
          assert.strictEqual(job.progress.percent, 0)
        }))

      it.effect("a payload or result over maxPayloadBytes inside a smaller body is 413 naming it; nothing written", () =>
        Effect.gen(function*() {
          const user = yield* token("in-payload")
          const worker = yield* token("in-payload-worker", ["worker"])
          const queue = uniqueQueue("payload")
          const id = yield* heldJob(user, worker, "in-payload-worker:w-payload")
          const before = yield* jobOf(user, id)
          // JSON.stringify("a" × 1023) is 1,025 bytes; "é" is 2 bytes in UTF-8: 600 of them are 1,202 bytes
          yield* expectCases([
            {
              method: "POST",
              path: "/v1/jobs",
              token: user,
              json: { name: "p", queue, payload: "a".repeat(1023) },
              status: 413,
              tag: "PayloadTooLarge",
              field: "payload"
            },
            {
              method: "POST",
              path: "/v1/jobs",
              token: user,
              json: { name: "p", queue, payload: { text: "a".repeat(2000) } },
              status: 413,
              tag: "PayloadTooLarge",
              field: "payload"
            },
            {
              method: "POST",
              path: "/v1/jobs",
              token: user,
              json: { name: "p", queue, payload: "é".repeat(600) },
              status: 413,
              tag: "PayloadTooLarge",
              field: "payload"
            },
            {
              method: "POST",
              path: "/v1/jobs/batch",
              token: user,
              json: { jobs: [{ name: "ok", queue }, { name: "big", queue, payload: "a".repeat(2000) }] },
              status: 413,
              tag: "PayloadTooLarge",
              field: "jobs[1].payload"
            },
            {
              method: "PATCH",
              path: `/v1/jobs/${id}`,
              token: worker,
              json: { workerId: "in-payload-worker:w-payload", status: "completed", result: "r".repeat(2000) },
              status: 413,
              tag: "PayloadTooLarge",
              field: "result"
            }
          ])
          const answer = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "p", queue, payload: "a".repeat(1023) } })
          assert.deepInclude(answer.body, { size: 1025, limit: 1024 })
          assert.strictEqual(yield* countIn(user, queue), 0)
          const after = yield* jobOf(user, id)
          assert.strictEqual(after.status, "running")
          assert.strictEqual(after.version, before.version)
          // exactly at the limit is fine
          const edge = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "edge", queue, payload: "a".repeat(1022) } })
          assert.strictEqual(edge.status, 201, show("payload of 1,024 bytes", edge))
          assert.strictEqual(yield* countIn(user, queue), 1)
        }))

      it.effect("a chunked body (no content-length) over maxBodyBytes is answered 413, not dropped", () =>
        Effect.gen(function*() {
          const user = yield* token("in-chunked")
          const queue = uniqueQueue("chunked")
          const server = yield* HttpServer.HttpServer
          const port = (server.address as HttpServer.TcpAddress).port
          const open = `{"name":"chunky","queue":${JSON.stringify(queue)},"payload":"`
          // under the limit: read and handled
          const small = parseHttp(yield* chunked(port, "/v1/jobs", user, [open, "x".repeat(100), "\"}"]))
          assert.strictEqual(small?.status, 201, JSON.stringify(small))
          // over it: 413 PayloadTooLarge, as for a body with a content-length
          const text = yield* chunked(port, "/v1/jobs", user, [open, "x".repeat(3000), "x".repeat(3000), "\"}"])
          const big = parseHttp(text)
          assert.isDefined(big, `no HTTP answer at all: ${JSON.stringify(text)}`)
          assert.deepStrictEqual(problemsOf("chunked 6 KB body", big!, { status: 413, tag: "PayloadTooLarge", field: "body" }), [])
          assert.strictEqual(yield* countIn(user, queue), 1)
        }))
    }
  )

  // the causes of the 500s a schema-driven fuzz found (see test/Fuzz.test.ts), one by one
  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("an unpaired UTF-16 surrogate in any text field, or in a token's sub, is a 4xx naming it; nothing written", () =>
      Effect.gen(function*() {
        const user = yield* token("in-surrogate")
        const worker = yield* token("in-surrogate-worker", ["worker"])
        const queue = uniqueQueue("surrogate")
        const id = yield* heldJob(user, worker, "in-surrogate-worker:w-surrogate")
        const before = yield* jobOf(user, id)
        // JSON's "\ud800" escape: valid JSON, not valid Unicode, and PostgreSQL's json refuses it
        const bodyOf = (fields: string) => `{"name":"ok","queue":${JSON.stringify(queue)},${fields}}`
        const post = (fields: string, field: string): Case => ({
          method: "POST", path: "/v1/jobs", token: user, body: bodyOf(fields), status: 400, tag: INVALID, field
        })
        yield* expectCases([
          { method: "POST", path: "/v1/jobs", token: user, body: `{"name":"a\\ud800b","queue":${JSON.stringify(queue)}}`, status: 400, tag: INVALID, field: "name" },
          { method: "POST", path: "/v1/jobs", token: user, body: `{"name":"ok","queue":"\\udfff"}`, status: 400, tag: INVALID, field: "queue" },
          post(`"idempotencyKey":"k\\ud83d"`, "idempotencyKey"),
          post(`"payload":{"s":"\\ud800"}`, "payload"),
          {
            method: "POST",
            path: "/v1/jobs/batch",
            token: user,
            body: `{"jobs":[{"name":"ok","queue":${JSON.stringify(queue)}},{"name":"\\udbff","queue":${JSON.stringify(queue)}}]}`,
            status: 400,
            tag: INVALID,
            field: "jobs[1].name"
          },
          { method: "POST", path: "/v1/workers/in-surrogate-worker:w-surrogate/claim", token: worker, body: `{"queues":["\\ud800"]}`, status: 400, tag: INVALID, field: "queues[0]" },
          {
            method: "POST",
            path: `/v1/jobs/${id}/progress`,
            token: worker,
            body: `{"workerId":"in-surrogate-worker:w-surrogate","percent":10,"step":"\\ud800"}`,
            status: 400,
            tag: [INVALID, "InvalidProgress"],
            field: "step"
          },
          {
            method: "PATCH",
            path: `/v1/jobs/${id}`,
            token: worker,
            body: `{"workerId":"in-surrogate-worker:w-surrogate","status":"failed","error":{"message":"\\udc00"}}`,
            status: 400,
            tag: INVALID,
            field: ["error", "error.message"]
          },
          // a token whose sub is not valid Unicode is refused: the sub becomes the owner of jobs
          { method: "POST", path: "/v1/jobs", token: yield* token("\ud800"), json: { name: "ok", queue }, status: 401, tag: "Unauthorized" },
          { method: "GET", path: "/v1/jobs", token: yield* token("x\udfff"), status: 401, tag: "Unauthorized" }
        ])
        assert.strictEqual(yield* countIn(user, queue), 0)
        const after = yield* jobOf(user, id)
        assert.deepStrictEqual([after.status, after.version], [before.status, before.version])
        // a surrogate pair (an emoji) is valid Unicode and fine
        const emoji = yield* raw("POST", "/v1/jobs", { token: user, body: bodyOf(`"idempotencyKey":"\\ud83d\\ude00"`) })
        assert.strictEqual(emoji.status, 201, show("emoji", emoji))
      }))

    it.effect("JSON nested deeper than the limit is 400 on every body before it is parsed; 64 levels in a payload are fine", () =>
      Effect.gen(function*() {
        const user = yield* token("in-deep")
        const worker = yield* token("in-deep-worker", ["worker"])
        const queue = uniqueQueue("deep")
        const id = yield* heldJob(user, worker, "in-deep-worker:w-deep")
        const before = yield* jobOf(user, id)
        const targets: ReadonlyArray<{ method: Method; path: string; token: string }> = [
          { method: "POST", path: "/v1/jobs", token: user },
          { method: "POST", path: "/v1/jobs/batch", token: user },
          { method: "POST", path: "/v1/jobs/wait", token: user },
          { method: "POST", path: "/v1/workers/in-deep-worker:w-deep/claim", token: worker },
          { method: "POST", path: "/v1/workers/in-deep-worker:w-deep/release", token: worker },
          { method: "PATCH", path: `/v1/jobs/${id}`, token: worker },
          { method: "POST", path: `/v1/jobs/${id}/progress`, token: worker },
          { method: "POST", path: "/v1/webhooks", token: user }
        ]
        const cases: Array<Case> = []
        for (const target of targets) {
          // 10,000 levels overflowed the stack of the decode error's formatter: 500
          cases.push({ ...target, body: nested(10_000), status: 400, tag: INVALID, field: "body" })
          cases.push({ ...target, body: `{"x":${nested(69)}}`, status: 400, tag: INVALID, field: "body" })
        }
        const job = (payload: string) => `{"name":"deep","queue":${JSON.stringify(queue)},"payload":${payload}}`
        cases.push(
          { method: "POST", path: "/v1/jobs", token: user, body: job(nested(65)), status: 400, tag: INVALID, field: "payload" },
          {
            method: "PATCH",
            path: `/v1/jobs/${id}`,
            token: worker,
            body: `{"workerId":"in-deep-worker:w-deep","status":"completed","result":${nested(65)}}`,
            status: 400,
            tag: INVALID,
            field: "result"
          },
          {
            method: "POST",
            path: `/v1/jobs/${id}/progress`,
            token: worker,
            body: `{"workerId":"in-deep-worker:w-deep","percent":10,"data":${nested(65)}}`,
            status: 400,
            tag: [INVALID, "InvalidProgress"],
            field: "data"
          }
        )
        yield* expectCases(cases)
        assert.strictEqual(yield* countIn(user, queue), 0)
        const after = yield* jobOf(user, id)
        assert.deepStrictEqual([after.status, after.version], [before.status, before.version])
        // the limit itself is fine, and the job reads back whole
        const ok = yield* raw("POST", "/v1/jobs", { token: user, body: job(nested(64)) })
        assert.strictEqual(ok.status, 201, show("64 levels", ok))
        const read = yield* raw("GET", `/v1/jobs/${ok.body.id}`, { token: user })
        assert.strictEqual(JSON.stringify(read.body.payload), nested(64))
      }))

    it.effect("a multipart or form body is 415 UnsupportedMediaType on every endpoint that takes one; nothing written", () =>
      Effect.gen(function*() {
        const user = yield* token("in-media")
        const worker = yield* token("in-media-worker", ["worker"])
        const queue = uniqueQueue("media")
        const id = yield* heldJob(user, worker, "in-media-worker:w-media")
        const before = yield* jobOf(user, id)
        const targets: ReadonlyArray<{ method: Method; path: string; token: string; json: unknown }> = [
          { method: "POST", path: "/v1/jobs", token: user, json: { name: "a", queue } },
          { method: "POST", path: "/v1/jobs/batch", token: user, json: { jobs: [{ name: "a", queue }] } },
          { method: "POST", path: "/v1/jobs/wait", token: user, json: { ids: [id], timeoutSeconds: 0 } },
          { method: "POST", path: "/v1/workers/in-media-worker:w-media/claim", token: worker, json: { queues: [queue] } },
          { method: "PATCH", path: `/v1/jobs/${id}`, token: worker, json: { workerId: "in-media-worker:w-media", status: "completed" } },
          { method: "POST", path: `/v1/jobs/${id}/progress`, token: worker, json: { workerId: "in-media-worker:w-media", percent: 50 } },
          { method: "POST", path: "/v1/webhooks", token: user, json: { url: "https://93.184.215.14/x", eventTypes: ["all"] } }
        ]
        const problems: Array<string> = []
        for (const target of targets) {
          for (const contentType of ["multipart/form-data", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]) {
            const answer = yield* withContentType(target.method, target.path, target.token, JSON.stringify(target.json), contentType)
            problems.push(...problemsOf(`${target.method} ${target.path} as ${contentType}`, answer, {
              status: 415,
              tag: "UnsupportedMediaType"
            }))
          }
        }
        if (problems.length > 0) assert.fail(problems.join("\n"))
        assert.strictEqual(yield* countIn(user, queue), 0)
        const after = yield* jobOf(user, id)
        assert.deepStrictEqual([after.status, after.version, after.progress.percent], [before.status, before.version, 0])
        // JSON, with or without a charset, is read as before
        const ok = yield* withContentType("POST", "/v1/jobs", user, JSON.stringify({ name: "a", queue }), "application/json; charset=utf-8")
        assert.strictEqual(ok.status, 201, show("charset", ok))
      }))

    it.effect("heartbeatSeconds out of an interval's range and a subnormal percent are 400, not 500; nothing claimed or reported", () =>
      Effect.gen(function*() {
        const user = yield* token("in-bounds")
        const worker = yield* token("in-bounds-worker", ["worker"])
        const queue = uniqueQueue("bounds")
        const pending = yield* enqueue(user, { name: "waiting", queue })
        const held = yield* heldJob(user, worker, "in-bounds-worker:w-bounds")
        const claim = (json: unknown, field: string): Case => ({
          method: "POST", path: "/v1/workers/in-bounds-worker:w-bounds/claim", token: worker, json, status: 400, tag: INVALID, field
        })
        const report = (percent: number): Case => ({
          method: "POST",
          path: `/v1/jobs/${held}/progress`,
          token: worker,
          body: `{"workerId":"in-bounds-worker:w-bounds","percent":${percent},"force":true}`,
          status: 400,
          tag: [INVALID, "InvalidProgress"],
          field: "percent"
        })
        yield* expectCases([
          claim({ queues: [queue], heartbeatSeconds: 1e13 }, "heartbeatSeconds"),
          claim({ queues: [queue], heartbeatSeconds: 3601 }, "heartbeatSeconds"),
          claim({ queues: [queue], heartbeatSeconds: 0.05 }, "heartbeatSeconds"),
          claim({ queues: [queue], waitSeconds: 1e308 * 10 }, "waitSeconds"),
          report(5e-324),
          report(-5e-324),
          report(1e-310)
        ])
        assert.strictEqual((yield* jobOf(user, pending)).status, "pending")
        assert.strictEqual((yield* jobOf(user, held)).progress.percent, 0)
        // the edges are fine: an hour's heartbeat, and the smallest normal number as a percent
        const claimed = yield* raw("POST", "/v1/workers/in-bounds-worker:w-bounds/claim", { token: worker, json: { queues: [queue], heartbeatSeconds: 3600 } })
        assert.deepStrictEqual(claimed.body.jobs?.map((j: { id: string }) => j.id), [pending], show("claim", claimed))
        const tiny = yield* raw("POST", `/v1/jobs/${held}/progress`, {
          token: worker,
          body: `{"workerId":"in-bounds-worker:w-bounds","percent":2.2250738585072014e-308,"force":true}`
        })
        assert.strictEqual(tiny.status, 200, show("smallest normal percent", tiny))
      }))

    it.effect("an error answer quotes at most an excerpt of the input: a 4 MB string in priority answers a few KB", () =>
      Effect.gen(function*() {
        const user = yield* token("in-echo")
        const queue = uniqueQueue("echo")
        const huge = "p".repeat(4 * 1024 * 1024)
        const large = "n".repeat(512 * 1024)
        for (const json of [{ name: "a", queue, priority: huge }, { name: large, queue }, { name: "a", queue, runAt: large }]) {
          const answer = yield* raw("POST", "/v1/jobs", { token: user, json })
          assert.strictEqual(answer.status, 400, show("huge", answer))
          const size = JSON.stringify(answer.body).length
          assert.isBelow(size, 16 * 1024, show(`answer of ${size} characters`, answer))
          assert.include(["HttpApiDecodeError", INVALID], answer.body._tag)
        }
        assert.strictEqual(yield* countIn(user, queue), 0)
      }))
  })
})
