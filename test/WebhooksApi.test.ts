import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { raw, serverLayer, token } from "./support/http.js"
import { formerlyAccepted } from "./support/ssrf.js"

/**
 * Whether an error body names `field` (`jobs[1].webhookSecret`): an `InvalidInput` of the service, or an
 * `HttpApiDecodeError` of the request's schema with an issue at that path.
 */
const namesField = (body: { _tag?: unknown; field?: unknown; issues?: unknown }, field: string): boolean =>
  body._tag === "InvalidInput" || body._tag === "WebhookTargetRefused"
    ? body.field === field
    : body._tag === "HttpApiDecodeError" && Array.isArray(body.issues) &&
      body.issues.some((issue: { path?: ReadonlyArray<unknown> }) => (issue.path ?? []).join(".") === field.replace(/\[(\d+)\]/g, ".$1"))

/** A public address as an IP literal: no DNS needed, and not a private network. */
const publicUrl = "https://93.184.215.14/hooks/jobwatch"

describe("webhook endpoints API", () => {
  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("create (secret shown once), list, get, update, rotate, deliveries, delete; per user", () =>
      Effect.gen(function*() {
        const alice = yield* token("hook-alice")
        const created = yield* raw("POST", "/v1/webhooks", {
          token: alice,
          json: { url: publicUrl, eventTypes: ["completed", "failed"], description: "billing" }
        })
        assert.strictEqual(created.status, 201)
        assert.match(created.body.secret, /^whsec_/)
        assert.deepInclude(created.body, { url: publicUrl, eventTypes: ["completed", "failed"], active: true, owner: "hook-alice" })
        const id = created.body.id as string
        const got = yield* raw("GET", `/v1/webhooks/${id}`, { token: alice })
        assert.strictEqual(got.status, 200)
        assert.notProperty(got.body, "secret")
        const listed = yield* raw("GET", "/v1/webhooks", { token: alice })
        assert.deepStrictEqual(listed.body.webhooks.map((w: { id: string }) => w.id), [id])
        const updated = yield* raw("PUT", `/v1/webhooks/${id}`, { token: alice, json: { eventTypes: ["all"], active: false } })
        assert.deepInclude(updated.body, { eventTypes: ["all"], active: false, url: publicUrl })
        const rotated = yield* raw("POST", `/v1/webhooks/${id}/rotate-secret`, { token: alice })
        assert.match(rotated.body.secret, /^whsec_/)
        assert.notStrictEqual(rotated.body.secret, created.body.secret)
        const log = yield* raw("GET", `/v1/webhooks/${id}/deliveries?page=1&limit=10`, { token: alice })
        assert.deepStrictEqual(log.body, { deliveries: [], pagination: { total: 0, page: 1, limit: 10, pages: 0 } })
        // another user: 404 everywhere; an admin sees it
        const bob = yield* token("hook-bob")
        for (
          const [method, path, json] of [
            ["GET", `/v1/webhooks/${id}`, undefined],
            ["PUT", `/v1/webhooks/${id}`, { active: true }],
            ["DELETE", `/v1/webhooks/${id}`, undefined],
            ["POST", `/v1/webhooks/${id}/rotate-secret`, undefined],
            ["GET", `/v1/webhooks/${id}/deliveries`, undefined]
          ] as const
        ) {
          const answer = yield* raw(method, path, { token: bob, json })
          assert.strictEqual(answer.status, 404, `${method} ${path}`)
          assert.strictEqual(answer.body._tag, "WebhookNotFound")
        }
        assert.deepStrictEqual((yield* raw("GET", "/v1/webhooks", { token: bob })).body.webhooks, [])
        const admin = yield* raw("GET", `/v1/webhooks/${id}`, { token: yield* token("root", ["admin"]) })
        assert.strictEqual(admin.status, 200)
        const deleted = yield* raw("DELETE", `/v1/webhooks/${id}`, { token: alice })
        assert.strictEqual(deleted.status, 200)
        assert.strictEqual((yield* raw("GET", `/v1/webhooks/${id}`, { token: alice })).status, 404)
        assert.strictEqual((yield* raw("GET", "/v1/webhooks")).status, 401)
      }))

    it.effect("bad inputs: malformed URLs, unknown event types, empty lists, private networks (422), foreign or bad ids (404)", () =>
      Effect.gen(function*() {
        const user = yield* token("hook-carol")
        const cases: ReadonlyArray<readonly [unknown, number, string, string?]> = [
          [{ url: "not a url", eventTypes: ["completed"] }, 400, "InvalidInput", "url"],
          [{ url: "ftp://93.184.215.14/x", eventTypes: ["completed"] }, 422, "WebhookTargetRefused", "url"],
          [{ url: "file:///etc/passwd", eventTypes: ["completed"] }, 422, "WebhookTargetRefused", "url"],
          [{ url: "https://user:pw@93.184.215.14/x", eventTypes: ["completed"] }, 400, "InvalidInput", "url"],
          [{ url: "", eventTypes: ["completed"] }, 400, "HttpApiDecodeError", "url"],
          [{ url: publicUrl, eventTypes: [] }, 400, "HttpApiDecodeError", "eventTypes"],
          [{ url: publicUrl, eventTypes: ["completed", "bogus"] }, 400, "HttpApiDecodeError", "eventTypes[1]"],
          [{ url: publicUrl, eventTypes: "completed" }, 400, "HttpApiDecodeError"],
          [{ url: publicUrl }, 400, "HttpApiDecodeError"],
          [{ eventTypes: ["all"] }, 400, "HttpApiDecodeError"],
          [{ url: publicUrl, eventTypes: ["all"], active: "yes" }, 400, "HttpApiDecodeError"],
          [{ url: publicUrl, eventTypes: ["all"], description: "x".repeat(501) }, 400, "HttpApiDecodeError", "description"],
          [{ url: "http://127.0.0.1:8080/x", eventTypes: ["all"] }, 422, "WebhookTargetRefused", "url"],
          [{ url: "http://localhost/x", eventTypes: ["all"] }, 422, "WebhookTargetRefused", "url"],
          [{ url: "http://10.1.2.3/x", eventTypes: ["all"] }, 422, "WebhookTargetRefused", "url"],
          [{ url: "http://192.168.0.10/x", eventTypes: ["all"] }, 422, "WebhookTargetRefused", "url"],
          [{ url: "http://169.254.169.254/latest/meta-data", eventTypes: ["all"] }, 422, "WebhookTargetRefused", "url"],
          [{ url: "http://[::1]/x", eventTypes: ["all"] }, 422, "WebhookTargetRefused", "url"],
          [{ url: "http://[::ffff:127.0.0.1]/x", eventTypes: ["all"] }, 422, "WebhookTargetRefused", "url"],
          [{ url: "http://0.0.0.0/x", eventTypes: ["all"] }, 422, "WebhookTargetRefused", "url"],
          [{ url: "http://224.0.0.1/x", eventTypes: ["all"] }, 422, "WebhookTargetRefused", "url"]
        ]
        for (const [json, status, tag, field] of cases) {
          const answer = yield* raw("POST", "/v1/webhooks", { token: user, json })
          assert.strictEqual(answer.status, status, JSON.stringify(json))
          assert.strictEqual(answer.body._tag, tag, JSON.stringify(json))
          if (field !== undefined) assert.isTrue(namesField(answer.body, field), JSON.stringify(answer.body))
        }
        const malformed = yield* raw("POST", "/v1/webhooks", { token: user, body: "{nope" })
        assert.strictEqual(malformed.status, 400)
        assert.deepStrictEqual((yield* raw("GET", "/v1/webhooks", { token: user })).body.webhooks, [])
        // the same checks on update, and on a job's own webhookUrl
        const ok = yield* raw("POST", "/v1/webhooks", { token: user, json: { url: publicUrl, eventTypes: ["all"] } })
        const refused = yield* raw("PUT", `/v1/webhooks/${ok.body.id}`, { token: user, json: { url: "http://127.0.0.1/x" } })
        assert.strictEqual(refused.status, 422)
        const unknownType = yield* raw("PUT", `/v1/webhooks/${ok.body.id}`, { token: user, json: { eventTypes: ["x"] } })
        assert.isTrue(namesField(unknownType.body, "eventTypes[0]"), JSON.stringify(unknownType.body))
        assert.strictEqual((yield* raw("GET", `/v1/webhooks/${ok.body.id}`, { token: user })).body.url, publicUrl)
        const job = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "x", webhookUrl: "http://10.0.0.1/cb" } })
        assert.deepInclude(job.body, { _tag: "WebhookTargetRefused", field: "webhookUrl" })
        const batch = yield* raw("POST", "/v1/jobs/batch", { token: user, json: { jobs: [{ name: "a" }, { name: "b", webhookUrl: "nope" }] } })
        assert.deepInclude(batch.body, { _tag: "InvalidInput", field: "jobs[1].webhookUrl" })
        // a job's callback secret: Standard Webhooks shape, 24 to 64 bytes, only beside a webhookUrl
        const secret = `whsec_${Buffer.alloc(32, 7).toString("base64")}`
        const secretCases: ReadonlyArray<readonly [string, unknown, string]> = [
          ["/v1/jobs", { name: "x", webhookSecret: secret }, "webhookSecret"],
          ["/v1/jobs", { name: "x", webhookUrl: publicUrl, webhookSecret: "hunter2hunter2hunter2hunter2" }, "webhookSecret"],
          ["/v1/jobs", { name: "x", webhookUrl: publicUrl, webhookSecret: "whsec_not base64!" }, "webhookSecret"],
          ["/v1/jobs", { name: "x", webhookUrl: publicUrl, webhookSecret: `whsec_${Buffer.alloc(8).toString("base64")}` }, "webhookSecret"],
          ["/v1/jobs", { name: "x", webhookUrl: publicUrl, webhookSecret: `whsec_${Buffer.alloc(65).toString("base64")}` }, "webhookSecret"],
          ["/v1/jobs/batch", { jobs: [{ name: "a" }, { name: "b", webhookSecret: secret }] }, "jobs[1].webhookSecret"]
        ]
        for (const [path, json, field] of secretCases) {
          const answer = yield* raw("POST", path, { token: user, json })
          assert.strictEqual(answer.status, 400, JSON.stringify(json))
          assert.isTrue(namesField(answer.body, field), JSON.stringify(answer.body))
        }
        const notText = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "x", webhookUrl: publicUrl, webhookSecret: 5 } })
        assert.strictEqual(notText.status, 400)
        assert.strictEqual(notText.body._tag, "HttpApiDecodeError")
        // a good one is kept, and never answered back
        const signed = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "x", webhookUrl: publicUrl, webhookSecret: secret } })
        assert.strictEqual(signed.status, 201, JSON.stringify(signed.body))
        for (const read of [signed, yield* raw("GET", `/v1/jobs/${signed.body.id}`, { token: user })]) {
          assert.notInclude(JSON.stringify(read.body), secret.slice(6))
        }
        // an id that is not a UUID is refused by the path's schema, as a job's is; an unknown one is not found
        assert.strictEqual((yield* raw("GET", "/v1/webhooks/not-an-id", { token: user })).status, 400)
        assert.strictEqual((yield* raw("GET", "/v1/webhooks/00000000-0000-0000-0000-000000000000", { token: user })).status, 404)
        const badPage = yield* raw("GET", `/v1/webhooks/${ok.body.id}/deliveries?limit=1000`, { token: user })
        assert.deepInclude(badPage.body, { _tag: "InvalidInput", field: "limit" })
      }))

    it.effect("NAT64, IPv4-compatible, -translated, 6to4, site-local and reserved IPv4 targets: 422 on create, update and a job's callback", () =>
      Effect.gen(function*() {
        const user = yield* token("hook-dave")
        const ok = yield* raw("POST", "/v1/webhooks", { token: user, json: { url: publicUrl, eventTypes: ["all"] } })
        assert.strictEqual(ok.status, 201)
        for (const [address, what] of formerlyAccepted) {
          const url = `http://${address}/hook`
          const answers = [
            ["create", yield* raw("POST", "/v1/webhooks", { token: user, json: { url, eventTypes: ["all"] } }), "url"],
            ["update", yield* raw("PUT", `/v1/webhooks/${ok.body.id}`, { token: user, json: { url } }), "url"],
            ["job", yield* raw("POST", "/v1/jobs", { token: user, json: { name: "x", webhookUrl: url } }), "webhookUrl"],
            ["batch", yield* raw("POST", "/v1/jobs/batch", { token: user, json: { jobs: [{ name: "x", webhookUrl: url }] } }), "jobs[0].webhookUrl"]
          ] as const
          for (const [where, answer, field] of answers) {
            assert.strictEqual(answer.status, 422, `${where} ${address} (${what})`)
            assert.deepInclude(answer.body, { _tag: "WebhookTargetRefused", field }, `${where} ${address}`)
          }
        }
        assert.strictEqual((yield* raw("GET", `/v1/webhooks/${ok.body.id}`, { token: user })).body.url, publicUrl)
        assert.lengthOf((yield* raw("GET", "/v1/webhooks", { token: user })).body.webhooks, 1)
      }))
  })

  layer(serverLayer({ webhookAllowPrivate: true }), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("JOBWATCH_WEBHOOK_ALLOW_PRIVATE lifts the private-network refusal", () =>
      Effect.gen(function*() {
        const user = yield* token("hook-dev")
        const created = yield* raw("POST", "/v1/webhooks", { token: user, json: { url: "http://127.0.0.1:9/x", eventTypes: ["all"] } })
        assert.strictEqual(created.status, 201)
        const job = yield* raw("POST", "/v1/jobs", { token: user, json: { name: "x", webhookUrl: "http://localhost:9/cb" } })
        assert.strictEqual(job.status, 201)
      }))
  })
})
