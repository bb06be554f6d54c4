import { assert, describe, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { existsSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import {
  browserProcesses,
  launchBrowser,
  openPage,
  recordErrors,
  recordRequests,
  screenshot,
  TestBrowser,
  hasChromium
} from "./support/browser.js"

/** The pages of the self-test; the main one runs under a strict CSP, like the dashboard will. */
const pages: Record<string, { readonly type: string; readonly body: string; readonly csp?: string }> = {
  "/": {
    type: "text/html",
    csp: "default-src 'self'",
    body: `<!doctype html><html><head><title>self-test</title><script src="/app.js" defer></script></head>
<body><h1>Harness self-test</h1><button id="ping">Ping</button><p id="answer"></p></body></html>`
  },
  "/app.js": {
    type: "text/javascript",
    body: `document.getElementById("ping").addEventListener("click", async () => {
  const response = await fetch("/ping")
  document.getElementById("answer").textContent = "server says " + (await response.text())
})`
  },
  "/ping": { type: "text/plain", body: "pong" },
  // an inline script the CSP refuses, and a script that throws: what the error log must catch
  "/broken": {
    type: "text/html",
    csp: "script-src 'self'",
    body: `<!doctype html><html><body><script>document.title = "inline ran"</script>
<script src="/throws.js"></script></body></html>`
  },
  "/throws.js": { type: "text/javascript", body: `throw new Error("thrown on purpose")` }
}

/** A static site on 127.0.0.1 (port 0) for the scope; its origin. */
class Site extends Context.Tag("jobwatch-test/BrowserSite")<Site, { readonly origin: string }>() {
  static readonly layer = Layer.scoped(
    Site,
    Effect.acquireRelease(
      Effect.async<{ readonly origin: string; readonly close: () => void }>((resume) => {
        const server = createServer((request, response) => {
          const page = pages[new URL(request.url ?? "/", "http://localhost").pathname]
          // Chromium asks for /favicon.ico by itself (that request is in no page's log) and reports a 404 as an error
          if (page === undefined) return response.writeHead(request.url === "/favicon.ico" ? 204 : 404).end()
          response.writeHead(200, {
            "content-type": `${page.type}; charset=utf-8`,
            ...(page.csp === undefined ? {} : { "content-security-policy": page.csp })
          })
          response.end(page.body)
        })
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as AddressInfo
          resume(Effect.succeed({
            origin: `http://127.0.0.1:${port}`,
            close: () => {
              // the browser keeps its connections alive: close them, or close() waits for them
              server.closeAllConnections()
              server.close()
            }
          }))
        })
      }),
      (site) => Effect.sync(site.close)
    )
  )
}

const bounded = { timeout: 10_000 } as const

describe.skipIf(!hasChromium)("the browser harness", () => {
  layer(Layer.merge(TestBrowser.layer, Site.layer), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.scoped("clicks a button, waits for the fetched answer, logs the request, takes a screenshot", () =>
      Effect.gen(function*() {
        const { origin } = yield* Site
        const page = yield* openPage
        const requests = yield* recordRequests(page)
        const errors = yield* recordErrors(page)
        yield* Effect.promise(() => page.goto(origin))
        yield* Effect.promise(() => page.click("#ping", bounded))
        yield* Effect.promise(() => page.locator("#answer", { hasText: "server says pong" }).waitFor(bounded))

        assert.deepStrictEqual(
          requests.map(({ method, url, resourceType }) => ({ method, path: new URL(url).pathname, resourceType })),
          [
            { method: "GET", path: "/", resourceType: "document" },
            { method: "GET", path: "/app.js", resourceType: "script" },
            { method: "GET", path: "/ping", resourceType: "fetch" }
          ]
        )
        assert.deepStrictEqual(errors, [])

        const path = yield* screenshot(page, "browser-self-test")
        assert.match(path, /browser-self-test\.png$/)
        assert.isTrue(existsSync(path))
        const png = yield* Effect.promise(() => readFile(path))
        assert.deepStrictEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
      }))

    it.scoped("collects CSP violations and uncaught exceptions as readable lines", () =>
      Effect.gen(function*() {
        const { origin } = yield* Site
        const page = yield* openPage
        const errors = yield* recordErrors(page)
        // both reports arrive as events after the page loads: wait for them, bounded
        const reported = Effect.promise(() =>
          Promise.all([
            page.waitForEvent("console", { ...bounded, predicate: (m) => m.text().includes("Content Security Policy") }),
            page.waitForEvent("pageerror", bounded)
          ])
        )
        yield* Effect.zip(reported, Effect.promise(() => page.goto(`${origin}/broken`)), { concurrent: true })
        assert.notStrictEqual(yield* Effect.promise(() => page.title()), "inline ran")
        assert.strictEqual(errors.length, 2, errors.join("\n"))
        assert.match(errors.find((e) => e.startsWith("console error")) ?? "", /violates the following Content Security Policy/)
        assert.include(errors, "uncaught Error: thrown on purpose")
      }))

    it.scoped("a released browser leaves no process and no profile behind", () =>
      Effect.gen(function*() {
        const userDataDir = yield* Effect.scoped(
          Effect.gen(function*() {
            const browser = yield* launchBrowser()
            yield* Effect.promise(() => browser.context.newPage())
            assert.isAbove((yield* browserProcesses(browser.userDataDir)).length, 0)
            assert.isTrue(existsSync(browser.userDataDir))
            return browser.userDataDir
          })
        )
        assert.deepStrictEqual(yield* browserProcesses(userDataDir), [])
        assert.isFalse(existsSync(userDataDir))
      }))
  })
})
