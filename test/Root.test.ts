import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { version } from "../src/version.js"
import { raw, serverLayer } from "./support/http.js"

const packageVersion = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  readonly version: string
}).version

describe("GET /", () => {
  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("answers JSON pointing to /docs and /openapi.json, with the package's version", () =>
      Effect.gen(function*() {
        assert.strictEqual(version, packageVersion)
        const answer = yield* raw("GET", "/", { headers: { accept: "application/json" } })
        assert.strictEqual(answer.status, 200)
        assert.match(String(answer.headers["content-type"]), /^application\/json/)
        assert.strictEqual(answer.headers["vary"], "Accept")
        assert.deepInclude(answer.body, {
          name: "jobwatch",
          version: packageVersion,
          docs: "/docs",
          openapi: "/openapi.json",
          dashboard: "/dashboard"
        })
        // no token needed, and what it points to is there
        for (const path of [answer.body.docs, answer.body.openapi]) {
          assert.strictEqual((yield* raw("GET", path)).status, 200, path)
        }
      }))

    it.effect("answers a browser a small page that links to /docs and /openapi.json", () =>
      Effect.gen(function*() {
        const page = yield* raw("GET", "/", { headers: { accept: "text/html,application/xhtml+xml,*/*;q=0.8" } })
        assert.strictEqual(page.status, 200)
        assert.match(String(page.headers["content-type"]), /^text\/html/)
        assert.include(page.body, `href="/dashboard"`)
        assert.include(page.body, `href="/docs"`)
        assert.include(page.body, `href="/openapi.json"`)
        assert.include(page.body, packageVersion)
      }))
  })
})
