import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Jobs } from "../src/Jobs.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import { raw, serverLayer, token } from "./support/http.js"

// The dashboard's HTTP surface without a browser: the session cookie's attributes, the sign-in form's own CSRF check,
// the security headers, and that no query string, form or path makes it answer a 5xx.

const form = "application/x-www-form-urlencoded"

/** `name=value` of a `set-cookie` header (one string, or several joined by the client). */
const cookieOf = (headers: Readonly<Record<string, string | undefined>>, name: string) => {
  const all = String(headers["set-cookie"] ?? "")
  const match = new RegExp(`(?:^|[,\\s])${name}=([^;,]*)([^,]*)`).exec(all)
  return match === null ? undefined : { value: match[1]!, attributes: match[2]! }
}

/** The sign-in form's CSRF token and login cookie, as a browser gets them. */
const loginForm = Effect.gen(function*() {
  const page = yield* raw("GET", "/dashboard/login")
  assert.strictEqual(page.status, 200)
  const cookie = cookieOf(page.headers, "jobwatch_dashboard_login")
  const csrf = /name="_csrf" value="([^"]+)"/.exec(String(page.body))?.[1]
  assert.isDefined(cookie)
  assert.isDefined(csrf)
  return { cookie: `jobwatch_dashboard_login=${cookie!.value}`, csrf: csrf! }
})

const signIn = (bearer: string, next = "/dashboard") =>
  Effect.gen(function*() {
    const login = yield* loginForm
    const body = new URLSearchParams({ _csrf: login.csrf, token: bearer, next }).toString()
    return yield* raw("POST", "/dashboard/login", { body, headers: { cookie: login.cookie, "content-type": form } })
  })

describe("the dashboard over HTTP", () => {
  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("signing in sets an HttpOnly, SameSite=Strict cookie on /dashboard; a bad token or form does not", () =>
      Effect.gen(function*() {
        const alice = yield* token("alice")
        const answer = yield* signIn(alice, "/dashboard/jobs?queue=a")
        assert.strictEqual(answer.status, 303)
        assert.strictEqual(answer.headers["location"], "/dashboard/jobs?queue=a")
        const session = cookieOf(answer.headers, "jobwatch_dashboard")
        assert.strictEqual(session?.value, alice)
        assert.match(session!.attributes, /HttpOnly/i)
        assert.match(session!.attributes, /SameSite=Strict/i)
        assert.match(session!.attributes, /Path=\/dashboard(;|$)/)
        assert.match(session!.attributes, /Max-Age=\d+/)

        // a refused token: 401, the form again with the reason, no session, and the token nowhere in the page
        const forged = `${alice.slice(0, -4)}AAAA`
        const refused = yield* signIn(forged)
        assert.strictEqual(refused.status, 401)
        assert.isUndefined(cookieOf(refused.headers, "jobwatch_dashboard"))
        assert.include(String(refused.body), "signature")
        assert.notInclude(String(refused.body), forged)

        // a token too long for a cookie is refused at once (a browser would drop the cookie without a word)
        const long = yield* signIn("x".repeat(4000))
        assert.strictEqual(long.status, 400)
        assert.include(String(long.body), "too long")

        // the form without its CSRF token (a page of another site signing the browser in): refused
        const login = yield* loginForm
        const noCsrf = yield* raw("POST", "/dashboard/login", {
          body: new URLSearchParams({ token: alice }).toString(),
          headers: { cookie: login.cookie, "content-type": form }
        })
        assert.strictEqual(noCsrf.status, 403)
        assert.isUndefined(cookieOf(noCsrf.headers, "jobwatch_dashboard"))

        // sign-in goes back to dashboard pages only
        for (const next of ["//evil.example/x", "https://evil.example/", "/v1/jobs", "/dashboardx", "/dashboard/../v1/jobs"]) {
          assert.strictEqual((yield* signIn(alice, next)).headers["location"], "/dashboard", next)
        }
      }))

    it.effect("pages carry a Content-Security-Policy without inline scripts; streams and fragments answer 401 without a session", () =>
      Effect.gen(function*() {
        const page = yield* raw("GET", "/dashboard/login")
        const csp = String(page.headers["content-security-policy"])
        assert.include(csp, "script-src 'self'")
        assert.notInclude(csp, "unsafe-inline")
        assert.notInclude(csp, "unsafe-eval")
        assert.include(csp, "frame-ancestors 'none'")
        assert.strictEqual(page.headers["x-content-type-options"], "nosniff")
        assert.notMatch(String(page.body), /<script>|<script [^>]*>[^<]/)
        for (const path of ["/dashboard/live?view=jobs", "/dashboard/overview/stats"]) {
          assert.strictEqual((yield* raw("GET", path)).status, 401, path)
        }
        assert.strictEqual((yield* raw("GET", "/dashboard/jobs")).status, 303)
        assert.strictEqual((yield* raw("GET", "/dashboard/jobs")).headers["location"], "/dashboard/login?next=%2Fdashboard%2Fjobs")
      }))

    it.effect("the assets come from the installed packages, with an ETag; any other name is a 404", () =>
      Effect.gen(function*() {
        for (const name of ["htmx.min.js", "sse.js", "dashboard.js", "dashboard.css"]) {
          const asset = yield* raw("GET", `/dashboard/assets/${name}`)
          assert.strictEqual(asset.status, 200, name)
          assert.match(String(asset.headers["content-type"]), name.endsWith(".css") ? /^text\/css/ : /^text\/javascript/)
          const again = yield* raw("GET", `/dashboard/assets/${name}`, { headers: { "if-none-match": String(asset.headers["etag"]) } })
          assert.strictEqual(again.status, 304, name)
        }
        assert.include(String((yield* raw("GET", "/dashboard/assets/sse.js")).body), "htmx.defineExtension('sse'")
        for (const name of ["..%2Fpackage.json", "nope.js", "constructor", "__proto__"]) {
          assert.strictEqual((yield* raw("GET", `/dashboard/assets/${name}`)).status, 404, name)
        }
      }))

    it.effect("bad filters, ids, cursors and forms answer a 4xx page, never a 5xx, and change nothing", () =>
      Effect.gen(function*() {
        const bob = yield* token("bob")
        const signedIn = yield* signIn(bob)
        const cookie = `jobwatch_dashboard=${cookieOf(signedIn.headers, "jobwatch_dashboard")!.value}`
        const id = (yield* raw("POST", "/v1/jobs", { token: bob, json: { name: "stay", queue: uniqueQueue("dh") } })).body.id as string
        const get = (path: string) => raw("GET", path, { headers: { cookie } })
        const cases: ReadonlyArray<readonly [string, number]> = [
          ["/dashboard/jobs?status=bogus", 400],
          ["/dashboard/jobs?cursor=%00%01", 400],
          ["/dashboard/jobs?id=not-a-uuid", 400],
          ["/dashboard/jobs?id=00000000-0000-7000-8000-000000000000", 404],
          [`/dashboard/jobs?queue=${"q".repeat(5000)}`, 400],
          ["/dashboard/jobs/not-a-uuid", 400],
          ["/dashboard/jobs/00000000-0000-7000-8000-000000000000", 404],
          ["/dashboard/webhooks/nope", 404],
          ["/dashboard/live?view=jobs&after=garbage", 400],
          ["/dashboard/live?view=job&id=nope", 400],
          ["/dashboard/live?view=jobs&status=%ZZ", 400],
          ["/dashboard/jobs?name=%F0%9F%92%A9%00", 400],
          // bytes that are not UTF-8 decode to U+FFFD: a name no job has
          ["/dashboard/jobs?name=%ED%A0%80", 200]
        ]
        for (const [path, status] of cases) assert.strictEqual((yield* get(path)).status, status, path)
        const page = yield* get(`/dashboard/jobs/${id}`)
        const csrf = /name="_csrf" value="([^"]+)"/.exec(String(page.body))![1]!
        for (const body of ["_csrf=" + "x".repeat(10_000), "%%%", "_csrf"]) {
          const answer = yield* raw("POST", `/dashboard/jobs/${id}/cancel`, { body, headers: { cookie, "content-type": form } })
          assert.strictEqual(answer.status, 403, body.slice(0, 20))
        }
        const deleteHeld = yield* raw("POST", `/dashboard/jobs/00000000-0000-7000-8000-000000000000/delete`, {
          body: `_csrf=${csrf}`,
          headers: { cookie, "content-type": form }
        })
        assert.strictEqual(deleteHeld.status, 404)
        assert.strictEqual((yield* (yield* Jobs).get(id)).status, "pending")
      }))

    it.effect("the workers and webhooks pages show the user's own: a worker holding one's job, one's endpoints", () =>
      Effect.gen(function*() {
        const [hana, ivan] = [yield* token("hana"), yield* token("ivan")]
        const cookieFor = (bearer: string) =>
          Effect.map(signIn(bearer), (answer) => `jobwatch_dashboard=${cookieOf(answer.headers, "jobwatch_dashboard")!.value}`)
        const [hanaCookie, ivanCookie] = [yield* cookieFor(hana), yield* cookieFor(ivan)]
        const queue = uniqueQueue("dh")
        const id = (yield* raw("POST", "/v1/jobs", { token: hana, json: { name: "hana-held", queue } })).body.id as string
        yield* (yield* Workers).claim("shared-worker", { queues: [queue] })
        yield* raw("POST", "/v1/webhooks", { token: hana, json: { url: "https://93.184.215.14/hana-hook", eventTypes: ["all"] } })

        const hanaWorkers = String((yield* raw("GET", "/dashboard/workers", { headers: { cookie: hanaCookie } })).body)
        assert.include(hanaWorkers, "shared-worker")
        assert.include(hanaWorkers, `/dashboard/jobs/${id}`)
        assert.include(hanaWorkers, "alive")
        const ivanWorkers = String((yield* raw("GET", "/dashboard/workers", { headers: { cookie: ivanCookie } })).body)
        assert.notInclude(ivanWorkers, "hana-held")
        assert.notInclude(ivanWorkers, "shared-worker")

        const hanaHooks = String((yield* raw("GET", "/dashboard/webhooks", { headers: { cookie: hanaCookie } })).body)
        assert.include(hanaHooks, "https://93.184.215.14/hana-hook")
        assert.include(hanaHooks, "healthy")
        assert.notInclude(String((yield* raw("GET", "/dashboard/webhooks", { headers: { cookie: ivanCookie } })).body), "hana-hook")
      }))

    it.effect("a job's actions: enqueue a copy (same name, queue, payload, owner), delete a pending one, purge a finished one", () =>
      Effect.gen(function*() {
        const judy = yield* token("judy")
        const answer = yield* signIn(judy)
        const cookie = `jobwatch_dashboard=${cookieOf(answer.headers, "jobwatch_dashboard")!.value}`
        const queue = uniqueQueue("dh")
        const id = (yield* raw("POST", "/v1/jobs", {
          token: judy,
          json: { name: "copy-me", queue, payload: { n: 7 }, priority: 5, maxAttempts: 3, timeoutSeconds: 60 }
        })).body.id as string
        const page = yield* raw("GET", `/dashboard/jobs/${id}`, { headers: { cookie } })
        const csrf = /name="_csrf" value="([^"]+)"/.exec(String(page.body))![1]!
        const post = (path: string) =>
          raw("POST", path, { body: `_csrf=${encodeURIComponent(csrf)}`, headers: { cookie, "content-type": form } })

        const copied = yield* post(`/dashboard/jobs/${id}/requeue`)
        assert.strictEqual(copied.status, 303)
        const copyId = /\/dashboard\/jobs\/([0-9a-f-]{36})\?notice=requeued$/.exec(String(copied.headers["location"]))![1]!
        assert.notStrictEqual(copyId, id)
        const jobs = yield* Jobs
        const copy = yield* jobs.get(copyId)
        assert.deepInclude(copy, { name: "copy-me", queue, owner: "judy", priority: 5, maxAttempts: 3, timeoutSeconds: 60, status: "pending" })
        assert.deepStrictEqual(copy.payload, { n: 7 })

        const deleted = yield* post(`/dashboard/jobs/${id}/delete`)
        assert.strictEqual(deleted.headers["location"], `/dashboard/jobs/${id}?notice=deleted`)
        assert.strictEqual((yield* jobs.get(id)).status, "deleted")
        // deleted is finished: deleting it again purges it with its history
        const purged = yield* post(`/dashboard/jobs/${id}/delete`)
        assert.strictEqual(purged.headers["location"], "/dashboard/jobs?notice=purged")
        assert.strictEqual((yield* raw("GET", `/dashboard/jobs/${id}`, { headers: { cookie } })).status, 404)
        // a finished job cannot be canceled: a 409 page, not a 5xx
        const cancelDone = yield* post(`/dashboard/jobs/${id}/cancel`)
        assert.strictEqual(cancelDone.status, 404)
        yield* jobs.cancel(copyId)
        assert.strictEqual((yield* post(`/dashboard/jobs/${copyId}/cancel`)).status, 409)
      }))
  })
})
