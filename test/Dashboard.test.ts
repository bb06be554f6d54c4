import { HttpServer } from "@effect/platform"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { Page } from "playwright-core"
import { Jobs } from "../src/Jobs.js"
import { Workers } from "../src/Workers.js"
import { openPage, recordErrors, recordRequests, screenshot, TestBrowser, hasChromium } from "./support/browser.js"
import { uniqueQueue } from "./support/fixtures.js"
import { raw, serverLayer, token } from "./support/http.js"

// The dashboard in a real browser (Debian's Chromium, driven by playwright-core) against the real server on a fresh
// schema: sign-in, the live jobs list fed by the stream, a job's page and its actions, users kept apart, the CSRF
// check, escaping. Every wait is on what the page shows, bounded; none is a sleep.

const bounded = { timeout: 10_000 } as const

const baseUrl = Effect.map(HttpServer.HttpServer, (server) => `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`)

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

/** Signs `page` in with `bearer` through the form (from `path`, which redirects there first); lands on `path`. */
const signIn = (page: Page, bearer: string, path = "/dashboard/jobs") =>
  Effect.gen(function*() {
    const base = yield* baseUrl
    // the tests share the browser, and with it its cookies
    yield* promise(() => page.context().clearCookies())
    yield* promise(() => page.goto(`${base}${path}`))
    assert.match(page.url(), /\/dashboard\/login\?next=/)
    yield* promise(() => page.getByLabel("Token").fill(bearer))
    yield* promise(() => page.getByRole("button", { name: "Sign in" }).click())
    yield* promise(() => page.waitForURL(`${base}${path}`, bounded))
  })

/** Waits until the page's event stream is open (what it shows once the stream answered). */
const waitLive = (page: Page) => promise(() => page.locator("[data-live-state][data-connected=true]").waitFor(bounded))

const enqueue = (bearer: string, body: Record<string, unknown>) =>
  Effect.map(raw("POST", "/v1/jobs", { token: bearer, json: body }), (response) => {
    assert.strictEqual(response.status, 201, JSON.stringify(response.body))
    return response.body.id as string
  })

const rowOf = (page: Page, id: string) => page.locator(`#job-${id}`)

describe.skipIf(!hasChromium)("the dashboard in a browser", () => {
  layer(Layer.merge(TestBrowser.layer, serverLayer()), { excludeTestServices: true, timeout: 120_000 })((it) => {
    it.scoped("sign in; a job enqueued through the API appears and its progress goes to 100 % and completed, live, with no reload and no polling", () =>
      Effect.gen(function*() {
        const page = yield* openPage
        const errors = yield* recordErrors(page)
        const alice = yield* token("alice")
        yield* signIn(page, alice)
        yield* waitLive(page)
        const requests = yield* recordRequests(page)
        // a reload would lose this
        yield* promise(() => page.evaluate("window.stillHere = true"))

        const queue = uniqueQueue("dash")
        const id = yield* enqueue(alice, { name: "resize-images", queue, payload: { count: 3 } })
        const row = rowOf(page, id)
        yield* promise(() => row.waitFor(bounded))
        assert.strictEqual(yield* promise(() => row.locator("progress").getAttribute("value")), "0")
        assert.include(yield* promise(() => row.innerText()), "pending")

        const workers = yield* Workers
        const [claimed] = yield* workers.claim("dash-worker", { queues: [queue], start: true })
        assert.strictEqual(claimed?.id, id)
        yield* workers.progress(id, { percent: 40, step: "resize", message: "2 of 5", force: true }, { workerId: "dash-worker" })
        yield* promise(() => row.locator(`progress[value="40"]`).waitFor(bounded))
        assert.include(yield* promise(() => row.innerText()), "resize")
        yield* workers.progress(id, { percent: 100, step: "upload", force: true }, { workerId: "dash-worker" })
        yield* promise(() => row.locator(`progress[value="100"]`).waitFor(bounded))
        yield* workers.complete(id, { workerId: "dash-worker", result: { resized: 3 } })
        yield* promise(() => page.locator(`#job-${id}[data-status="completed"]`).waitFor(bounded))
        assert.include(yield* promise(() => row.innerText()), "completed")

        assert.isTrue(yield* promise(() => page.evaluate("window.stillHere === true")))
        // the page's only request after it loaded is none at all: the stream it opened brought every change
        assert.deepStrictEqual(requests.map((r) => `${r.method} ${new URL(r.url).pathname}`), [])
        assert.deepStrictEqual(errors, [])
      }))

    it.scoped("Pause updates holds what the stream brings, in order, until Resume", () =>
      Effect.gen(function*() {
        const page = yield* openPage
        const errors = yield* recordErrors(page)
        const kim = yield* token("kim")
        yield* signIn(page, kim)
        yield* waitLive(page)
        const pause = page.locator("[data-live-toggle]")
        yield* promise(() => pause.click())
        assert.strictEqual(yield* promise(() => pause.getAttribute("aria-pressed")), "true")
        const queue = uniqueQueue("dash")
        const id = yield* enqueue(kim, { name: "held-back", queue })
        yield* promise(() => page.getByRole("button", { name: "Resume updates (1 waiting)" }).waitFor(bounded))
        assert.strictEqual(yield* promise(() => rowOf(page, id).count()), 0)
        yield* promise(() => pause.click())
        yield* promise(() => rowOf(page, id).waitFor(bounded))
        assert.strictEqual(yield* promise(() => pause.innerText()), "Pause updates")
        assert.deepStrictEqual(errors, [])
      }))

    it.scoped("a job's page shows every field, its timeline of versions, and updates live", () =>
      Effect.gen(function*() {
        const page = yield* openPage
        const errors = yield* recordErrors(page)
        const bob = yield* token("bob")
        const queue = uniqueQueue("dash")
        const id = yield* enqueue(bob, { name: "report", queue, payload: { month: "2026-11" } })
        yield* signIn(page, bob, `/dashboard/jobs/${id}`)
        yield* waitLive(page)
        assert.include(yield* promise(() => page.locator("#job-summary").innerText()), id)
        assert.include(yield* promise(() => page.locator("pre.json").first().innerText()), "2026-11")
        assert.strictEqual(yield* promise(() => page.locator("#timeline-body tr").count()), 1)

        const workers = yield* Workers
        yield* workers.claim("dash-worker-2", { queues: [queue], start: true })
        yield* workers.progress(id, { percent: 50, step: "sum", force: true }, { workerId: "dash-worker-2" })
        yield* workers.complete(id, { workerId: "dash-worker-2", result: { total: 42 } })
        // every version since the page opened is a row, in order, added live
        const { version } = yield* (yield* Jobs).get(id)
        assert.isAtLeast(version, 4)
        yield* promise(() => page.locator(`#timeline-body tr#event-${version}`).waitFor(bounded))
        const versions = yield* promise(() => page.locator("#timeline-body tr").evaluateAll((rows) => rows.map((r) => r.id)))
        assert.deepStrictEqual(versions, Array.from({ length: version }, (_, i) => `event-${i + 1}`))
        const timeline = yield* promise(() => page.locator("#timeline-body").innerText())
        assert.include(timeline, "enqueued as pending")
        assert.include(timeline, "pending → ")
        assert.include(timeline, "progress 0 % → 50 %")
        assert.include(timeline, "running → completed")
        yield* promise(() => page.locator(`#job-summary[data-version="${version}"]`).waitFor(bounded))
        // the finished job's actions came with it: no Cancel any more
        yield* promise(() => page.locator(`#job-actions[data-version="${version}"]`).waitFor(bounded))
        assert.strictEqual(yield* promise(() => page.getByRole("button", { name: "Cancel" }).count()), 0)
        const summary = yield* promise(() => page.locator("#job-summary").innerText())
        assert.include(summary, "completed")
        assert.include(summary, "\"total\": 42")
        yield* screenshot(page, "dashboard-job")
        // the actions that came live are whole forms: enqueue a copy from them
        yield* promise(() => page.locator("#job-actions").getByRole("button", { name: "Enqueue a copy" }).click())
        yield* promise(() => page.waitForURL(/\/dashboard\/jobs\/[0-9a-f-]{36}\?notice=requeued$/, bounded))
        assert.notInclude(page.url(), id)
        assert.deepStrictEqual(errors, [])
      }))

    it.scoped("cancel a pending job from its page", () =>
      Effect.gen(function*() {
        const page = yield* openPage
        const carol = yield* token("carol")
        const id = yield* enqueue(carol, { name: "to-cancel", queue: uniqueQueue("dash") })
        yield* signIn(page, carol, `/dashboard/jobs/${id}`)
        yield* promise(() => page.getByRole("button", { name: "Cancel" }).click())
        yield* promise(() => page.waitForURL(/notice=canceled/, bounded))
        assert.include(yield* promise(() => page.locator("#job-summary").innerText()), "canceled")
        const jobs = yield* Jobs
        assert.strictEqual((yield* jobs.get(id)).status, "canceled")
      }))

    it.scoped("a user's dashboard never shows another user's job", () =>
      Effect.gen(function*() {
        const page = yield* openPage
        const dave = yield* token("dave")
        const erin = yield* token("erin")
        const queue = uniqueQueue("dash")
        const before = yield* enqueue(erin, { name: "erin-secret", queue })
        yield* signIn(page, dave)
        yield* waitLive(page)
        const during = yield* enqueue(erin, { name: "erin-secret", queue })
        // dave's own job, enqueued after erin's: once it shows, erin's would have shown first
        const mine = yield* enqueue(dave, { name: "dave-own", queue })
        yield* promise(() => rowOf(page, mine).waitFor(bounded))
        const text = yield* promise(() => page.locator("main").innerText())
        assert.notInclude(text, "erin-secret")
        assert.strictEqual(yield* promise(() => rowOf(page, during).count()), 0)
        // another user's job's page is as good as missing, and so is the overview's queue
        const base = yield* baseUrl
        const response = yield* promise(() => page.goto(`${base}/dashboard/jobs/${before}`))
        assert.strictEqual(response?.status(), 404)
        yield* promise(() => page.goto(`${base}/dashboard`))
        const overview = yield* promise(() => page.locator("main").innerText())
        assert.include(overview, queue)
        // the queue's row counts dave's one pending job, not erin's two
        const pending = page.locator("table.queues tr", { hasText: queue }).locator("td").nth(1)
        assert.strictEqual((yield* promise(() => pending.innerText())).trim(), "1")
      }))

    it.scoped("without a valid session a page redirects to sign-in, and an action without the CSRF token does nothing", () =>
      Effect.gen(function*() {
        const page = yield* openPage
        const base = yield* baseUrl
        yield* promise(() => page.context().clearCookies())
        yield* promise(() => page.goto(`${base}/dashboard/workers`))
        assert.match(page.url(), /\/dashboard\/login\?next=%2Fdashboard%2Fworkers$/)
        // an expired token in the cookie is no session either
        const expired = yield* token("frank", [], -60)
        yield* promise(() => page.context().addCookies([{ name: "jobwatch_dashboard", value: expired, url: `${base}/dashboard` }]))
        yield* promise(() => page.goto(`${base}/dashboard`))
        assert.match(page.url(), /\/dashboard\/login/)

        const frank = yield* token("frank")
        const id = yield* enqueue(frank, { name: "keep-me", queue: uniqueQueue("dash") })
        yield* signIn(page, frank, `/dashboard/jobs/${id}`)
        // the page's own form, with its token taken out, and a forged one: both refused, the job untouched
        const statuses = yield* promise(() =>
          page.evaluate(async (jobId) => {
            const post = (body: string) =>
              fetch(`/dashboard/jobs/${jobId}/cancel`, {
                method: "POST",
                headers: { "content-type": "application/x-www-form-urlencoded" },
                body,
                redirect: "manual"
              }).then((r) => r.status)
            return [await post(""), await post("_csrf=forged")]
          }, id)
        )
        assert.deepStrictEqual(statuses, [403, 403])
        const jobs = yield* Jobs
        assert.strictEqual((yield* jobs.get(id)).status, "pending")
      }))

    it.scoped("a job named <img src=x onerror=alert(1)> is shown as text, in the list (live) and on its page", () =>
      Effect.gen(function*() {
        const page = yield* openPage
        const errors = yield* recordErrors(page)
        const dialogs: Array<string> = []
        page.on("dialog", (dialog) => {
          dialogs.push(dialog.message())
          void dialog.dismiss()
        })
        const grace = yield* token("grace")
        const name = "<img src=x onerror=alert(1)>"
        yield* signIn(page, grace)
        yield* waitLive(page)
        const id = yield* enqueue(grace, { name, queue: uniqueQueue("dash"), payload: { html: "<script>alert(2)</script>" } })
        yield* promise(() => rowOf(page, id).waitFor(bounded))
        assert.strictEqual(yield* promise(() => rowOf(page, id).locator("td.name").innerText()), name)
        assert.strictEqual(yield* promise(() => page.locator("main img").count()), 0)
        yield* promise(() => rowOf(page, id).locator("a").click())
        yield* promise(() => page.waitForURL(/\/dashboard\/jobs\/[0-9a-f-]+$/, bounded))
        assert.include(yield* promise(() => page.locator("h1").innerText()), name)
        assert.include(yield* promise(() => page.locator("pre.json").first().innerText()), "<script>alert(2)</script>")
        assert.strictEqual(yield* promise(() => page.locator("main img, main script").count()), 0)
        assert.deepStrictEqual(dialogs, [])
        assert.deepStrictEqual(errors, [])
      }))

    it.scoped("the overview at 1280×800 and on a phone's width, by keyboard", () =>
      Effect.gen(function*() {
        const page = yield* openPage
        const errors = yield* recordErrors(page)
        const admin = yield* token("root", ["admin"])
        // a failed job too, for the chart's other kind of bar
        const queue = uniqueQueue("dash")
        const failing = yield* enqueue(admin, { name: "flaky-export", queue, maxAttempts: 1 })
        const workers = yield* Workers
        yield* workers.claim("dash-worker-3", { queues: [queue] })
        yield* workers.fail(failing, { workerId: "dash-worker-3", code: "upstream", error: "the upstream answered 502" })
        yield* signIn(page, admin, "/dashboard")
        assert.strictEqual(yield* promise(() => page.locator("table.queues tr", { hasText: queue }).locator("td").nth(5).innerText()), "1")
        assert.include(yield* promise(() => page.locator("table.queues").innerText()), "dash-")
        assert.strictEqual(yield* promise(() => page.locator("svg[role=img] rect.bar-completed").count()), 60)
        yield* screenshot(page, "dashboard-overview")
        // the first Tab reaches the skip link, Enter moves to the content
        yield* promise(() => page.keyboard.press("Tab"))
        assert.strictEqual(yield* promise(() => page.evaluate("document.activeElement?.textContent")), "Skip to the content")
        // a phone: nothing wider than the screen but the tables, which scroll inside their own box
        yield* promise(() => page.setViewportSize({ width: 390, height: 844 }))
        const base = yield* baseUrl
        yield* promise(() => page.goto(`${base}/dashboard/jobs`))
        const width = Number(yield* promise(() => page.evaluate("document.documentElement.scrollWidth")))
        assert.isAtMost(width, 390)
        yield* screenshot(page, "dashboard-jobs-phone")
        assert.deepStrictEqual(errors, [])
      }))
  })
})
