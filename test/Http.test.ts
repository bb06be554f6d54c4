import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Jobs } from "../src/Jobs.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import { clientAs, raw, serverLayer, token } from "./support/http.js"

describe("HTTP API", () => {
  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("a user enqueues, reads and lists their jobs through the derived client", () =>
      Effect.gen(function*() {
        const alice = yield* clientAs(yield* token("alice"))
        const queue = uniqueQueue("http")
        const ref = yield* alice.jobs.enqueue({ payload: { name: "render", queue, payload: { n: 1 }, priority: 3 } })
        assert.strictEqual(ref.status, "pending")
        assert.isFalse(ref.existing)
        const info = yield* alice.jobs.get({ path: { id: ref.id }, headers: {}, urlParams: {} })
        assert.strictEqual(info.owner, "alice")
        assert.deepStrictEqual(info.payload, { n: 1 })
        assert.strictEqual(info.priority, 3)
        const status = yield* alice.jobs.status({ path: { id: ref.id }, headers: {}, urlParams: {} })
        assert.deepInclude({ ...status }, { id: ref.id, status: "pending", terminal: false, percent: 0, version: 1 })
        const page = yield* alice.jobs.list({ urlParams: { queue, status: ["pending"] } })
        assert.deepStrictEqual("pagination" in page ? page.jobs.map((j) => j.id) : [], [ref.id])
      }))

    it.effect("status=in_progress lists claimed and running jobs, over HTTP and RPC-shaped list options alike", () =>
      Effect.gen(function*() {
        const user = yield* token("in-progress")
        const worker = yield* token("in-progress-worker", ["worker"])
        const queue = uniqueQueue("in-progress")
        const enqueue = (name: string) => raw("POST", "/v1/jobs", { token: user, json: { name, queue } })
        const claimed = (yield* enqueue("claimed")).body.id
        const claim = yield* raw("POST", "/v1/workers/in-progress-worker/claim", { token: worker, json: { queues: [queue] } })
        assert.deepStrictEqual(claim.body.jobs.map((j: { id: string }) => j.id), [claimed])
        const running = (yield* enqueue("running")).body.id
        const started = yield* raw("POST", "/v1/workers/in-progress-worker/claim", {
          token: worker,
          json: { queues: [queue], start: true }
        })
        assert.deepStrictEqual(started.body.jobs.map((j: { id: string }) => j.id), [running])
        yield* enqueue("pending")
        const ids = (query: string) =>
          Effect.map(raw("GET", `/v1/jobs?queue=${queue}&${query}`, { token: user }), (answer) => {
            assert.strictEqual(answer.status, 200, JSON.stringify(answer.body))
            return answer.body.jobs.map((j: { id: string }) => j.id).sort()
          })
        assert.deepStrictEqual(yield* ids("status=in_progress"), [claimed, running].sort())
        assert.deepStrictEqual(yield* ids("status=IN_PROGRESS"), [claimed, running].sort())
        assert.deepStrictEqual(yield* ids("status=running"), [running])
        const alice = yield* clientAs(user)
        const page = yield* alice.jobs.list({ urlParams: { queue, status: ["claimed", "running"] } })
        assert.deepStrictEqual("pagination" in page ? page.jobs.map((j) => j.id).sort() : [], [claimed, running].sort())
      }))

    it.effect("enqueue answers 201, and 200 with the same job for a repeated idempotency key", () =>
      Effect.gen(function*() {
        const bearer = yield* token("bob")
        const body = { name: "charge", queue: uniqueQueue("idem"), idempotencyKey: "order-17" }
        const first = yield* raw("POST", "/v1/jobs", { token: bearer, json: body })
        assert.strictEqual(first.status, 201)
        assert.isFalse(first.body.existing)
        const again = yield* raw("POST", "/v1/jobs", { token: bearer, json: body })
        assert.strictEqual(again.status, 200)
        assert.strictEqual(again.body.id, first.body.id)
        assert.isTrue(again.body.existing)
      }))

    it.effect("another user's job is 404, an admin sees it", () =>
      Effect.gen(function*() {
        const alice = yield* token("alice")
        const ref = yield* raw("POST", "/v1/jobs", { token: alice, json: { name: "secret" } })
        const mallory = yield* token("mallory")
        for (
          const [method, path] of [
            ["GET", `/v1/jobs/${ref.body.id}`],
            ["GET", `/v1/jobs/${ref.body.id}/status`],
            ["POST", `/v1/jobs/${ref.body.id}/cancel`],
            ["DELETE", `/v1/jobs/${ref.body.id}`]
          ] as const
        ) {
          const answer = yield* raw(method, path, { token: mallory })
          assert.strictEqual(answer.status, 404, `${method} ${path}`)
          assert.strictEqual(answer.body._tag, "JobNotFound")
        }
        const waited = yield* raw("POST", "/v1/jobs/wait", { token: mallory, json: { ids: [ref.body.id], timeoutSeconds: 0 } })
        assert.strictEqual(waited.status, 404)
        const listed = yield* raw("GET", "/v1/jobs?limit=100", { token: mallory })
        assert.notInclude(listed.body.jobs.map((j: { id: string }) => j.id), ref.body.id)
        const admin = yield* raw("GET", `/v1/jobs/${ref.body.id}`, { token: yield* token("root", ["admin"]) })
        assert.strictEqual(admin.status, 200)
        assert.strictEqual(admin.body.owner, "alice")
      }))

    it.effect("no, malformed, expired or forged tokens are 401; worker endpoints need the worker role (403)", () =>
      Effect.gen(function*() {
        const none = yield* raw("GET", "/v1/jobs")
        assert.strictEqual(none.status, 401)
        assert.strictEqual(none.body._tag, "Unauthorized")
        const malformed = yield* raw("GET", "/v1/jobs", { token: "not.a.jwt" })
        assert.strictEqual(malformed.status, 401)
        const expired = yield* raw("GET", "/v1/jobs", { token: yield* token("alice", [], -60) })
        assert.strictEqual(expired.status, 401)
        assert.match(expired.body.message, /expired/)
        const jose = yield* Effect.promise(() => import("jose"))
        const forged = yield* Effect.promise(() =>
          new jose.SignJWT({ roles: ["admin"] }).setProtectedHeader({ alg: "HS256" }).setSubject("eve")
            .setExpirationTime("1h").sign(new TextEncoder().encode("another-secret-another-secret-another-secret"))
        )
        assert.strictEqual((yield* raw("GET", "/v1/jobs", { token: forged })).status, 401)
        const unsigned = new jose.UnsecuredJWT({ roles: ["admin"] }).setSubject("eve").setExpirationTime("1h").encode()
        assert.strictEqual((yield* raw("GET", "/v1/jobs", { token: unsigned })).status, 401)
        const noExp = yield* Effect.promise(() =>
          new jose.SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("eve")
            .sign(new TextEncoder().encode("jobwatch-test-secret-0123456789-abcdefghij"))
        )
        assert.strictEqual((yield* raw("GET", "/v1/jobs", { token: noExp })).status, 401)
        const user = yield* token("alice")
        const claim = yield* raw("POST", "/v1/workers/w1/claim", { token: user, json: {} })
        assert.strictEqual(claim.status, 403)
        assert.deepInclude(claim.body, { _tag: "Forbidden", required: "worker" })
        const noToken = yield* raw("POST", "/v1/workers/w1/claim", { json: {} })
        assert.strictEqual(noToken.status, 401)
        // the role is checked before the body is read: 403 whatever a caller without it sends
        for (const body of ["{nope", JSON.stringify({ limit: "many" })]) {
          const answer = yield* raw("POST", "/v1/workers/w1/claim", { token: user, body })
          assert.strictEqual(answer.status, 403, body)
        }
        const patch = yield* raw("PATCH", "/v1/jobs/not-a-uuid", { token: user, json: { status: "sideways" } })
        assert.strictEqual(patch.status, 403)
      }))

    it.effect("a worker claims, heartbeats, reports progress and completes over HTTP", () =>
      Effect.gen(function*() {
        const user = yield* token("carol")
        const worker = yield* token("w", ["worker"])
        const queue = uniqueQueue("wk")
        const ref = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "pdf", queue, payload: { p: 1 } } })
        const claim = yield* raw("POST", "/v1/workers/w:1/claim", { token: worker, json: { queues: [queue], limit: 5 } })
        assert.strictEqual(claim.status, 200)
        assert.deepStrictEqual(claim.body.jobs.map((j: { id: string }) => j.id), [ref.body.id])
        assert.deepInclude(claim.body.jobs[0], { name: "pdf", queue, payload: { p: 1 }, attempt: 1, maxAttempts: 1 })
        const beat = yield* raw("PATCH", "/v1/workers/w:1", { token: worker })
        assert.deepStrictEqual(beat.body, { cancelRequested: [] })
        const started = yield* raw("PATCH", `/v1/jobs/${ref.body.id}`, { token: worker, json: { workerId: "w:1", status: "running" } })
        assert.strictEqual(started.body.status, "running")
        const progress = yield* raw("POST", `/v1/jobs/${ref.body.id}/progress`, {
          token: worker,
          json: { workerId: "w:1", percent: 40, step: "render" }
        })
        assert.deepStrictEqual(progress.body, { accepted: true, persisted: true, percent: 40 })
        const back = yield* raw("POST", `/v1/jobs/${ref.body.id}/progress`, { token: worker, json: { workerId: "w:1", percent: 10 } })
        assert.strictEqual(back.status, 409)
        assert.deepInclude(back.body, { _tag: "ProgressRegression", current: 40, requested: 10 })
        const stranger = yield* raw("PATCH", `/v1/jobs/${ref.body.id}`, {
          token: worker,
          json: { workerId: "w:2", status: "completed", result: 1 }
        })
        assert.strictEqual(stranger.status, 409)
        assert.strictEqual(stranger.body._tag, "NotJobHolder")
        const done = yield* raw("PATCH", `/v1/jobs/${ref.body.id}`, {
          token: worker,
          json: { workerId: "w:1", status: "completed", result: { url: "/x.pdf" } }
        })
        assert.strictEqual(done.status, 200)
        assert.deepInclude(done.body, { status: "completed", terminal: true, result: { url: "/x.pdf" } })
        const twice = yield* raw("PATCH", `/v1/jobs/${ref.body.id}`, { token: worker, json: { workerId: "w:1", status: "completed" } })
        assert.strictEqual(twice.status, 409)
        assert.strictEqual(twice.body._tag, "InvalidTransition")
        const mine = yield* raw("GET", `/v1/jobs/${ref.body.id}`, { token: user })
        assert.strictEqual(mine.body.progress.percent, 100)
      }))

    it.effect("Prefer: wait answers when the job completes, with Preference-Applied; no header and wait=0 at once", () =>
      Effect.gen(function*() {
        const user = yield* token("dave")
        const queue = uniqueQueue("poll")
        const ref = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "slow", queue } })
        const atOnce = yield* raw("GET", `/v1/jobs/${ref.body.id}`, { token: user })
        assert.strictEqual(atOnce.body.status, "pending")
        assert.isUndefined(atOnce.headers["preference-applied"])
        const zero = yield* raw("GET", `/v1/jobs/${ref.body.id}`, { token: user, headers: { prefer: "wait=0" } })
        assert.strictEqual(zero.body.status, "pending")
        const workers = yield* Workers
        const poll = yield* Effect.fork(raw("GET", `/v1/jobs/${ref.body.id}`, { token: user, headers: { prefer: "wait=30" } }))
        yield* Effect.sleep("200 millis")
        yield* workers.claim("wp", { queues: [queue] })
        const started = performance.now()
        yield* workers.complete(ref.body.id, { workerId: "wp", result: "ok" })
        const answer = yield* poll.await.pipe(Effect.flatten)
        const elapsed = performance.now() - started
        assert.strictEqual(answer.status, 200)
        assert.strictEqual(answer.body.status, "completed")
        assert.strictEqual(answer.body.result, "ok")
        assert.strictEqual(answer.headers["preference-applied"], "wait=30")
        // woken by the commit, not by the end of the wait
        assert.isBelow(elapsed, 20_000)
        // status with afterVersion: at once when the version is already past it
        const status = yield* raw("GET", `/v1/jobs/${ref.body.id}/status?afterVersion=1`, { token: user, headers: { prefer: "wait=30" } })
        assert.deepInclude(status.body, { status: "completed", terminal: true })
      }))

    it.effect("afterVersion answers as soon as the version passes it; a wait that ends answers the job as it is", () =>
      Effect.gen(function*() {
        const user = yield* token("erin")
        const queue = uniqueQueue("after")
        const ref = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "steps", queue } })
        const workers = yield* Workers
        yield* workers.claim("wa", { queues: [queue] })
        const current = (yield* raw("GET", `/v1/jobs/${ref.body.id}`, { token: user })).body.version as number
        const poll = yield* Effect.fork(
          raw("GET", `/v1/jobs/${ref.body.id}/status?afterVersion=${current}`, { token: user, headers: { prefer: "wait=30" } })
        )
        yield* Effect.sleep("200 millis")
        yield* workers.progress(ref.body.id, { percent: 30, force: true }, { workerId: "wa" })
        const answer = yield* poll.await.pipe(Effect.flatten)
        assert.isAbove(answer.body.version, current)
        assert.strictEqual(answer.body.percent, 30)
        assert.isFalse(answer.body.terminal)
        // nothing happens: the wait ends and the job is answered as it is
        const idle = yield* raw("GET", `/v1/jobs/${ref.body.id}`, { token: user, headers: { prefer: "wait=1" } })
        assert.strictEqual(idle.status, 200)
        assert.strictEqual(idle.body.status, "running")
        assert.strictEqual(idle.headers["preference-applied"], "wait=1")
      }))

    it.effect("wait for many: all, any, timed out", () =>
      Effect.gen(function*() {
        const user = yield* token("frank")
        const jobs = yield* Jobs
        const workers = yield* Workers
        const queue = uniqueQueue("many")
        const a = yield* jobs.enqueue({ name: "a", queue, owner: "frank" })
        const b = yield* jobs.enqueue({ name: "b", queue, owner: "frank" })
        const timedOut = yield* raw("POST", "/v1/jobs/wait", { token: user, json: { ids: [a.id, b.id], mode: "all", timeoutSeconds: 0.2 } })
        assert.strictEqual(timedOut.status, 200)
        assert.isTrue(timedOut.body.timedOut)
        assert.deepStrictEqual(timedOut.body.jobs.map((j: { status: string }) => j.status), ["pending", "pending"])
        yield* workers.claim("wm", { queues: [queue], limit: 2 })
        yield* workers.complete(a.id, { workerId: "wm", result: 1 })
        const any = yield* raw("POST", "/v1/jobs/wait", { token: user, json: { ids: [b.id, a.id], mode: "any", timeoutSeconds: 30 } })
        assert.isFalse(any.body.timedOut)
        assert.deepStrictEqual(any.body.jobs.map((j: { id: string; status: string }) => [j.id, j.status]), [
          [b.id, "claimed"],
          [a.id, "completed"]
        ])
        yield* workers.fail(b.id, { workerId: "wm", code: "bad", error: "no", retryable: false })
        const all = yield* raw("POST", "/v1/jobs/wait", { token: user, json: { ids: [a.id, b.id], timeoutSeconds: 30 } })
        assert.isFalse(all.body.timedOut)
        assert.deepStrictEqual(all.body.jobs[1].error, { code: "bad", message: "no" })
      }))

    it.effect("cancel and delete follow the transition table", () =>
      Effect.gen(function*() {
        const user = yield* token("gina")
        const workers = yield* Workers
        const queue = uniqueQueue("cancel")
        const pending = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "p", queue } })
        const canceled = yield* raw("POST", `/v1/jobs/${pending.body.id}/cancel`, { token: user })
        assert.deepInclude(canceled.body, { status: "canceled", terminal: true })
        const again = yield* raw("POST", `/v1/jobs/${pending.body.id}/cancel`, { token: user })
        assert.strictEqual(again.status, 409)
        assert.strictEqual(again.body._tag, "InvalidTransition")
        const held = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "h", queue } })
        yield* workers.claim("wc", { queues: [queue] })
        const requested = yield* raw("POST", `/v1/jobs/${held.body.id}/cancel`, { token: user })
        assert.deepInclude(requested.body, { status: "claimed", cancelRequested: true })
        const notDeleted = yield* raw("DELETE", `/v1/jobs/${held.body.id}`, { token: user })
        assert.strictEqual(notDeleted.status, 409)
        const other = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "d", queue: uniqueQueue("del") } })
        const deleted = yield* raw("DELETE", `/v1/jobs/${other.body.id}`, { token: user })
        assert.deepInclude(deleted.body, { status: "deleted", terminal: true })
      }))
  })
})

describe("HTTP API documents and CORS", () => {
  layer(serverLayer({ corsOrigins: ["https://app.example.com"] }), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("/openapi.json is valid OpenAPI 3 with every endpoint, its error responses and the bearer scheme", () =>
      Effect.gen(function*() {
        const answer = yield* raw("GET", "/openapi.json")
        assert.strictEqual(answer.status, 200)
        const spec = answer.body
        assert.match(spec.openapi, /^3\./)
        const SwaggerParser = (yield* Effect.promise(() => import("@apidevtools/swagger-parser"))).default
        yield* Effect.promise(() => SwaggerParser.validate(structuredClone(spec)))
        const operations: Array<string> = []
        for (const [path, item] of Object.entries(spec.paths as Record<string, Record<string, unknown>>)) {
          for (const method of Object.keys(item)) operations.push(`${method.toUpperCase()} ${path}`)
        }
        for (
          const expected of [
            "GET /health",
            "GET /ready",
            "POST /v1/jobs",
            "POST /v1/jobs/batch",
            "GET /v1/jobs",
            "POST /v1/jobs/wait",
            "GET /v1/jobs/{id}",
            "GET /v1/jobs/{id}/status",
            "POST /v1/jobs/{id}/cancel",
            "DELETE /v1/jobs/{id}",
            "POST /v1/workers/{workerId}/claim",
            "PATCH /v1/workers/{workerId}",
            "PATCH /v1/jobs/{id}",
            "POST /v1/jobs/{id}/progress",
            "POST /v1/workers/{workerId}/release",
            "GET /v1/jobs/{id}/events",
            "GET /v1/events"
          ]
        ) assert.include(operations, expected)
        const get = spec.paths["/v1/jobs/{id}"].get
        for (const status of ["200", "400", "401", "404"]) assert.property(get.responses, status)
        assert.property(spec.paths["/v1/jobs/{id}/progress"].post.responses, "409")
        assert.property(spec.paths["/v1/workers/{workerId}/claim"].post.responses, "403")
        assert.deepInclude(Object.values(spec.components.securitySchemes), { type: "http", scheme: "bearer" })
        assert.isNotEmpty(get.security)
        const docs = yield* raw("GET", "/docs")
        assert.strictEqual(docs.status, 200)
        assert.match(String(docs.body), /swagger/i)
        // offline: no script or stylesheet from elsewhere
        assert.notMatch(String(docs.body), /<script[^>]+src="https?:/)
      }))

    it.effect("CORS answers the configured origin only", () =>
      Effect.gen(function*() {
        const allowed = yield* raw("GET", "/health", { headers: { origin: "https://app.example.com" } })
        assert.strictEqual(allowed.headers["access-control-allow-origin"], "https://app.example.com")
        assert.include(allowed.headers["access-control-expose-headers"], "preference-applied")
        // another origin is never echoed back: a browser refuses the answer
        const other = yield* raw("GET", "/health", { headers: { origin: "https://evil.example.com" } })
        assert.notStrictEqual(other.headers["access-control-allow-origin"], "https://evil.example.com")
      }))
  })
})

describe("HTTP API without CORS origins", () => {
  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("sends no CORS headers by default", () =>
      Effect.gen(function*() {
        const answer = yield* raw("GET", "/health", { headers: { origin: "https://app.example.com" } })
        assert.isUndefined(answer.headers["access-control-allow-origin"])
      }))
  })
})
