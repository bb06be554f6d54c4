import { HttpServer } from "@effect/platform"
import { assert, describe, layer } from "@effect/vitest"
import type Axe from "axe-core"
import { Context, Effect, Layer } from "effect"
import { readFile } from "node:fs/promises"
import { createRequire } from "node:module"
import type { Page } from "playwright-core"
import { Workers } from "../src/Workers.js"
import { openPage, recordErrors, TestBrowser, hasChromium } from "./support/browser.js"
import { uniqueQueue } from "./support/fixtures.js"
import { raw, serverLayer, token } from "./support/http.js"

// An automated accessibility audit of every dashboard page with axe-core in Chromium, at a desktop's and a phone's
// width, against WCAG 2.1 A and AA; then what axe cannot see: the Tab order, the focus ring, the overview's refresh
// keeping the keyboard's place, the live region. The pages are seeded through the real services so that each shows
// content (a table, a progress bar, an error, a worker's held job, a webhook's deliveries), not its empty state.

const bounded = { timeout: 10_000 } as const

/** axe's global, in the page once its source is evaluated there (never in this process). */
declare const axe: typeof Axe

/** axe's source, evaluated in the page over CDP: the pages' CSP refuses an injected `<script>` (and should). */
const axeSource = readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8")

const wcag21AA: Axe.RunOptions = {
  runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
  resultTypes: ["violations"]
}

const viewports = [{ width: 1280, height: 800 }, { width: 390, height: 844 }] as const

interface Violation {
  readonly id: string
  readonly impact: string | null | undefined
  readonly help: string
  readonly targets: ReadonlyArray<string>
  readonly count: number
}

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

const baseUrl = Effect.map(
  HttpServer.HttpServer,
  (server) => `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`
)

/** What the seeded pages show: one user's jobs in two queues, a worker holding one, a webhook endpoint. */
class Seeded extends Context.Tag("jobwatch-test/A11ySeeded")<Seeded, {
  readonly bearer: string
  readonly running: string
  readonly failed: string
  readonly endpoint: string
}>() {
  static readonly layer = Layer.effect(
    Seeded,
    Effect.gen(function*() {
      const bearer = yield* token("ada")
      const worker = "ada:a11y-worker"
      const workers = yield* Workers
      const [reports, imports] = [uniqueQueue("a11y-reports"), uniqueQueue("a11y-imports")]
      // the endpoint first, so every event after it has a delivery (pending: this server delivers none)
      const hook = yield* raw("POST", "/v1/webhooks", {
        token: bearer,
        json: { url: "https://93.184.215.14/hook", eventTypes: ["all"] }
      })
      assert.strictEqual(hook.status, 201, JSON.stringify(hook.body))
      const enqueue = (name: string, queue: string, payload: unknown) =>
        Effect.map(raw("POST", "/v1/jobs", { token: bearer, json: { name, queue, payload } }), (response) => {
          assert.strictEqual(response.status, 201, JSON.stringify(response.body))
          return response.body.id as string
        })
      const claimOne = (queue: string, expected: string) =>
        Effect.map(workers.claim(worker, { queues: [queue], start: true }), ([job]) =>
          assert.strictEqual(job?.id, expected))

      const completed = yield* enqueue("monthly-report", reports, { month: "2026-11" })
      yield* claimOne(reports, completed)
      yield* workers.complete(completed, { workerId: worker, result: { pages: 12, url: "s3://reports/2026-11.pdf" } })

      const failed = yield* enqueue("import-customers", imports, { file: "customers.csv" })
      yield* claimOne(imports, failed)
      const error = "line 42: missing e-mail"
      yield* workers.fail(failed, { workerId: worker, code: "invalid_input", error, retryable: false })

      const running = yield* enqueue("weekly-report", reports, { week: 48 })
      yield* claimOne(reports, running)
      const progress = { percent: 40, step: "render", message: "page 5 of 12", force: true }
      yield* workers.progress(running, progress, { workerId: worker })

      yield* enqueue("import-orders", imports, { file: "orders.csv" })
      return { bearer, running, failed, endpoint: hook.body.id as string }
    })
  )
}

/** Signs in through the form, on a browser without cookies (the tests share it). */
const signIn = (page: Page, bearer: string) =>
  Effect.gen(function*() {
    const base = yield* baseUrl
    yield* promise(() => page.context().clearCookies())
    yield* promise(() => page.goto(`${base}/dashboard/login`))
    yield* promise(() => page.getByLabel("Token").fill(bearer))
    yield* promise(() => page.getByRole("button", { name: "Sign in" }).click())
    yield* promise(() => page.waitForURL(`${base}/dashboard`, bounded))
  })

/** axe's WCAG 2.1 A/AA violations on the page as it is now. */
const violationsOf = (page: Page) =>
  Effect.gen(function*() {
    const source = yield* promise(() => axeSource)
    yield* promise(() => page.evaluate(source))
    return yield* promise(() =>
      page.evaluate(async (options) => {
        const results = await axe.run(options)
        return results.violations.map((v) => ({
          id: v.id,
          impact: v.impact,
          help: v.help,
          targets: v.nodes.slice(0, 3).map((node) => node.target.join(" ")),
          count: v.nodes.length
        }))
      }, wcag21AA)
    )
  })

const describeViolations = (where: string, violations: ReadonlyArray<Violation>) =>
  `${where}: ${violations.length} WCAG 2.1 AA violation(s)\n${
    violations.map((v) =>
      `- ${v.id} (${v.impact ?? "?"}): ${v.help}; ${v.count} node(s), e.g. ${v.targets.join(" | ")}`
    ).join("\n")
  }`

/**
 * Opens `path` (signed in unless `signedOut`) at each viewport, waits for what `ready` names (a live page's stream
 * open, so axe sees it settled), and asserts axe finds nothing.
 */
const audit = (
  path: (seed: Context.Tag.Service<Seeded>) => string,
  options: { readonly signedOut?: boolean; readonly ready?: string } = {}
) =>
  Effect.gen(function*() {
    const seed = yield* Seeded
    const page = yield* openPage
    const errors = yield* recordErrors(page)
    const base = yield* baseUrl
    if (options.signedOut === true) yield* promise(() => page.context().clearCookies())
    else yield* signIn(page, seed.bearer)
    for (const viewport of viewports) {
      yield* promise(() => page.setViewportSize(viewport))
      const response = yield* promise(() => page.goto(`${base}${path(seed)}`))
      assert.strictEqual(response?.status(), 200, page.url())
      if (options.ready !== undefined) yield* promise(() => page.locator(options.ready!).first().waitFor(bounded))
      const violations = yield* violationsOf(page)
      const where = `${path(seed)} at ${viewport.width}×${viewport.height}`
      assert.deepStrictEqual(violations, [], describeViolations(where, violations))
    }
    assert.deepStrictEqual(errors, [])
  })

const live = "[data-live-state][data-connected=true]"

/** The focused element, as `tag[name]`, and whether its focus ring is the dashboard's (solid, 3px, its colour). */
const focused = `(() => {
  const e = document.activeElement
  if (e === null || e === document.body) return { stop: "body", ring: true }
  const name = (e.getAttribute("aria-label") || e.textContent || e.getAttribute("name") || "").trim()
    .replace(/\\s+/g, " ")
  const s = getComputedStyle(e)
  const ring = s.outlineStyle === "solid" && s.outlineWidth === "3px" && s.outlineColor === "rgb(194, 65, 12)"
  return { stop: e.tagName.toLowerCase() + "[" + name.slice(0, 40) + "]", ring }
})()`

/** Tabs from the top of the page until the focus leaves it (or `most` stops): each stop, and those without the ring. */
const tabStops = (page: Page, most = 40) =>
  Effect.gen(function*() {
    yield* promise(() => page.evaluate("document.activeElement?.blur()"))
    const stops: Array<string> = []
    const ringless: Array<string> = []
    for (let i = 0; i < most; i++) {
      yield* promise(() => page.keyboard.press("Tab"))
      const { stop, ring } = (yield* promise(() => page.evaluate(focused))) as { stop: string; ring: boolean }
      if (stop === "body") break
      stops.push(stop)
      if (!ring) ringless.push(stop)
    }
    return { stops, ringless }
  })

const includesInOrder = (stops: ReadonlyArray<string>, expected: ReadonlyArray<string | RegExp>) => {
  let at = 0
  for (const want of expected) {
    const found = stops.findIndex((stop, i) => i >= at && (typeof want === "string" ? stop === want : want.test(stop)))
    assert.isAtLeast(found, 0, `${String(want)} after stop ${at} of ${JSON.stringify(stops)}`)
    at = found + 1
  }
}

describe.skipIf(!hasChromium)("the dashboard's accessibility (axe-core, WCAG 2.1 A and AA)", () => {
  layer(
    Seeded.layer.pipe(Layer.provideMerge(Layer.merge(TestBrowser.layer, serverLayer({ webhooks: false })))),
    { excludeTestServices: true, timeout: 120_000 }
  )((it) => {
    it.scoped("sign-in", () => audit(() => "/dashboard/login", { signedOut: true }))
    it.scoped("overview", () => audit(() => "/dashboard", { ready: "table.queues" }))
    it.scoped("jobs list", () => audit(() => "/dashboard/jobs", { ready: live }))
    it.scoped("a running job's page", () => audit((seed) => `/dashboard/jobs/${seed.running}`, { ready: live }))
    it.scoped("a failed job's page", () => audit((seed) => `/dashboard/jobs/${seed.failed}`, { ready: live }))
    it.scoped("workers", () => audit(() => "/dashboard/workers", { ready: "table.workers" }))
    it.scoped("webhooks", () => audit(() => "/dashboard/webhooks", { ready: "table.webhooks" }))
    it.scoped("an endpoint's delivery log", () =>
      audit((seed) => `/dashboard/webhooks/${seed.endpoint}`, { ready: "main table tbody tr" }))

    it.scoped("by keyboard: Tab reaches the nav, filters, rows' links and a job's actions, the ring shown", () =>
      Effect.gen(function*() {
        const seed = yield* Seeded
        const page = yield* openPage
        const base = yield* baseUrl
        yield* signIn(page, seed.bearer)
        const nav = [
          "a[Skip to the content]",
          "a[jobwatch]",
          "a[Overview]",
          "a[Jobs]",
          "a[Workers]",
          "a[Webhooks]",
          "button[Sign out]"
        ]
        const rowLink = /^a\[[0-9a-f]{8}…/
        yield* promise(() => page.goto(`${base}/dashboard/jobs`))
        yield* promise(() => page.locator(live).waitFor(bounded))
        const list = yield* tabStops(page)
        const filters = [/^select\[/, "input[queue]", "input[name]", "input[id]", "button[Show]", "a[Clear]"]
        includesInOrder(list.stops, [...nav, ...filters, rowLink])
        assert.isAtLeast(list.stops.filter((stop) => rowLink.test(stop)).length, 4, JSON.stringify(list.stops))
        assert.deepStrictEqual(list.ringless, [])
        // a job's page on a phone: the payload and the tables that scroll sideways are tab stops too
        yield* promise(() => page.setViewportSize({ width: 390, height: 844 }))
        yield* promise(() => page.goto(`${base}/dashboard/jobs/${seed.running}`))
        yield* promise(() => page.locator(live).waitFor(bounded))
        const job = yield* tabStops(page)
        includesInOrder(job.stops, [
          ...nav,
          "pre[Payload (JSON)]",
          "button[Cancel]",
          "button[Enqueue a copy]",
          "div[Timeline table]",
          "div[Webhook deliveries table]"
        ])
        assert.deepStrictEqual(job.ringless, [])
        yield* promise(() => page.setViewportSize({ width: 1280, height: 800 }))
      }))

    it.scoped("the overview's refresh waits while the focus is in its figures, then goes on", () =>
      Effect.gen(function*() {
        const seed = yield* Seeded
        const page = yield* openPage
        yield* signIn(page, seed.bearer)
        const link = page.locator("table.queues td a").first()
        yield* promise(() => link.focus())
        const href = yield* promise(() => link.getAttribute("href"))
        // the next poll (every 5 s) is refused by dashboard.js, and the focus stays where it was
        const next = (event: string) =>
          promise(() =>
            page.evaluate(`new Promise((done) => document.addEventListener("${event}",
              (e) => setTimeout(() => done(e.defaultPrevented)), { once: true }))`)
          ).pipe(Effect.timeout("10 seconds"))
        const refused = yield* next("htmx:beforeRequest")
        assert.isTrue(refused)
        assert.strictEqual(yield* promise(() => page.evaluate("document.activeElement?.getAttribute('href')")), href)
        // focus elsewhere: the figures are replaced again
        yield* promise(() => page.evaluate("document.activeElement?.blur()"))
        yield* next("htmx:afterSettle")
      }))

    it.scoped("the live region announces a listed job that finishes", () =>
      Effect.gen(function*() {
        const seed = yield* Seeded
        const page = yield* openPage
        const base = yield* baseUrl
        yield* signIn(page, seed.bearer)
        yield* promise(() => page.goto(`${base}/dashboard/jobs`))
        const announcer = page.locator("#announcer[aria-live=polite]")
        assert.strictEqual(yield* promise(() => announcer.count()), 1)
        yield* promise(() => page.locator(live).waitFor(bounded))
        const queue = uniqueQueue("a11y-announce")
        const id = yield* Effect.map(
          raw("POST", "/v1/jobs", { token: seed.bearer, json: { name: "announce-me", queue } }),
          (response) => response.body.id as string
        )
        yield* promise(() => page.locator(`#job-${id}`).waitFor(bounded))
        const workers = yield* Workers
        yield* workers.claim("ada:a11y-announcer", { queues: [queue], start: true })
        yield* workers.complete(id, { workerId: "ada:a11y-announcer" })
        const said = page.locator("#announcer:text('announce-me is completed')")
        yield* promise(() => said.waitFor({ state: "attached", ...bounded }))
      }))
  })
})
