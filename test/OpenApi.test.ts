import { OpenApi } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Predicate } from "effect"
import { readFileSync } from "node:fs"
import { Api } from "../src/Api.js"
import { version } from "../src/version.js"

// What /openapi.json tells a client before it sends anything: every operation explained, every bound of a request
// shown (the same schemas decode the requests, so what the spec says is what the server enforces).

const spec = OpenApi.fromApi(Api)
const packageVersion: unknown = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version

type JsonSchema = Readonly<Record<string, unknown>>

/** `value[key]` when `value` is a JSON object holding an object there. */
const child = (value: unknown, key: string, label: string): JsonSchema => {
  const found = Predicate.isRecord(value) ? value[key] : undefined
  assert.isTrue(Predicate.isRecord(found), label)
  return found as JsonSchema
}
const component = (name: string) => child(spec.components.schemas, name, `component ${name}`)
const property = (schema: JsonSchema, name: string) => child(schema["properties"], name, `property ${name}`)
const parameter = (path: string, method: "get" | "post" | "delete" | "patch", name: string): JsonSchema => {
  const found = spec.paths[path]?.[method]?.parameters?.find((p) => p.name === name)
  return child(found, "schema", `${method} ${path} ${name}`)
}
const uuid = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/

describe("OpenAPI", () => {
  it("every operation has a summary and a description", () => {
    const missing: Array<string> = []
    let operations = 0
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const method of ["get", "post", "put", "patch", "delete"] as const) {
        const operation = item[method]
        if (operation === undefined) continue
        operations++
        if (!operation.summary?.trim()) missing.push(`${method} ${path}: summary`)
        if (!operation.description?.trim()) missing.push(`${method} ${path}: description`)
      }
    }
    assert.isAtLeast(operations, 24)
    assert.deepStrictEqual(missing, [])
  })

  it("the request schemas show their bounds", () => {
    const enqueue = component("EnqueueBody")
    assert.deepInclude(property(enqueue, "name"), { minLength: 1, maxLength: 200 })
    assert.deepInclude(property(enqueue, "priority"), { minimum: -(2 ** 31 - 1), maximum: 2 ** 31 - 1 })
    assert.deepInclude(property(enqueue, "maxAttempts"), { minimum: 1, maximum: 1000 })
    assert.deepInclude(property(enqueue, "delaySeconds"), { type: "number", minimum: 0 })
    assert.deepInclude(property(enqueue, "timeoutSeconds"), { minimum: 0.001, maximum: 365 * 24 * 3600 })
    assert.isNotEmpty(enqueue["examples"])
    assert.deepInclude(property(component("EnqueueBatchBody"), "jobs"), { minItems: 1, maxItems: 10_000 })
    assert.deepInclude(parameter("/v1/jobs", "get", "limit"), { type: "integer", minimum: 1, maximum: 10_000 })
    assert.deepInclude(parameter("/v1/jobs", "get", "page"), { type: "integer", minimum: 1 })
    assert.deepInclude(parameter("/v1/jobs/{id}", "get", "afterVersion"), { type: "integer", minimum: 0 })
    const ids = property(component("WaitBody"), "ids")
    assert.deepInclude(ids, { minItems: 1, maxItems: 1000 })
    assert.strictEqual(child(ids, "items", "ids.items")["pattern"], uuid.source)
    assert.deepInclude(property(component("ReleaseBody"), "ids"), { maxItems: 1000 })
    const idPaths = [["/v1/jobs/{id}", "get"], ["/v1/jobs/{id}/progress", "post"], ["/v1/webhooks/{id}", "get"]] as const
    for (const [path, method] of idPaths) {
      assert.strictEqual(parameter(path, method, "id")["pattern"], uuid.source, `${method} ${path}`)
    }
    assert.deepInclude(parameter("/v1/workers/{workerId}/claim", "post", "workerId"), { minLength: 1, maxLength: 200 })
    const claim = component("ClaimBody")
    assert.deepInclude(property(claim, "waitSeconds"), { minimum: 0, maximum: 600 })
    assert.deepInclude(property(claim, "heartbeatSeconds"), { minimum: 0.1, maximum: 3600 })
    assert.deepInclude(property(claim, "queues"), { minItems: 1, maxItems: 100 })
    assert.deepInclude(property(component("ProgressBody"), "step"), { maxLength: 200 })
    assert.deepInclude(property(component("WebhookBody"), "eventTypes"), { minItems: 1, maxItems: 5 })
  })

  it("info.version is the package's", () => {
    assert.strictEqual(version, packageVersion)
    assert.strictEqual(spec.info.version, packageVersion)
  })
})
