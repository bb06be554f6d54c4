import { HttpLayerRouter, HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Duration, Effect, Layer, Option } from "effect"
import { StreamAuthentication } from "./Auth/Api.js"
import { serveAsset } from "./Dashboard/assets.js"
import { DashboardRepo } from "./Dashboard/DashboardRepo.js"
import type { Html } from "./Dashboard/html.js"
import { html } from "./Dashboard/html.js"
import { jobHref, jobPage, jobsList, rowOfJob } from "./Dashboard/jobsView.js"
import { bare, notice, page, respond, seeOther } from "./Dashboard/layout.js"
import type { Section } from "./Dashboard/layout.js"
import { makeLive } from "./Dashboard/live.js"
import { deliveryLog, overviewStats, signInForm, webhooksPage, workersPage } from "./Dashboard/pagesView.js"
import type { Session } from "./Dashboard/session.js"
import * as Sessions from "./Dashboard/session.js"
import { isUuid } from "./Domain/Values.js"
import { EventsRepo } from "./EventLog.js"
import { Limits } from "./Http/Limits.js"
import { Waits } from "./Http/Waits.js"
import { Jobs } from "./Jobs.js"
import { streamCursor } from "./Streams/EventStream.js"
import { StreamTail } from "./Streams/Tail.js"
import { Webhooks } from "./Webhooks.js"

const { basePath } = Sessions

/** What an action did, by the code its redirect carries (never text from the request). */
const notices: Record<string, string> = {
  canceled: "Cancel requested: the job is canceled, or its worker has been asked to stop.",
  deleted: "The job was deleted.",
  purged: "The finished job was deleted with its history.",
  requeued: "A copy was enqueued: this is the new job.",
  signedout: "You are signed out."
}

/** The refusals a page answers with a status of its own (never a 5xx for what the request asked). */
type Refusal = { readonly _tag: string; readonly message: string }
const statusOf: Record<string, number> = {
  InvalidInput: 400,
  Unauthorized: 401,
  Forbidden: 403,
  JobNotFound: 404,
  WebhookNotFound: 404,
  InvalidTransition: 409,
  PayloadTooLarge: 413,
  TooManyRequests: 429
}

const searchOf = (request: HttpServerRequest.HttpServerRequest) => {
  const at = request.url.indexOf("?")
  return new URLSearchParams(at === -1 ? "" : request.url.slice(at + 1))
}
const param = (search: URLSearchParams, name: string) => {
  const value = search.get(name)?.trim()
  return value === undefined || value === "" ? undefined : value.slice(0, 400)
}
/** Where sign-in may send the browser back to: a page of the dashboard, nothing else (no open redirect). */
const safeNext = (next: string | undefined) =>
  next !== undefined && /^\/dashboard(?:[/?][^\s\\]*)?$/.test(next) && !next.includes("..") ? next : basePath

/** The longest token a session cookie holds (with its name and attributes, within a browser's 4 KiB). */
const maxTokenLength = 3800

/** A form body (`application/x-www-form-urlencoded`), as the body limit let it through. */
const formOf = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.map(Effect.orElseSucceed(request.text, () => ""), (text) => new URLSearchParams(text))

/** The dashboard's routes (see `DashboardRoutes`). */
const routes = Effect.gen(function*() {
  const auth = yield* StreamAuthentication
  const jobs = yield* Jobs
  const repo = yield* DashboardRepo
  const events = yield* EventsRepo
  const tail = yield* StreamTail
  const webhooks = yield* Webhooks
  const limits = yield* Limits
  const live = yield* makeLive
  const withAuth = Effect.provideService(StreamAuthentication, auth)

  const refusalPage = (session: Session | undefined, error: Refusal) => {
    const status = statusOf[error._tag] ?? 400
    const body = html`${notice(error.message, "error")}<p><a href="${basePath}/jobs">Back to the jobs</a></p>`
    const markup = session === undefined ? bare("Refused", body) : page(session, "jobs", "Refused", body)
    const response = respond(markup, status)
    return error._tag === "TooManyRequests" ? HttpServerResponse.setHeader(response, "retry-after", "1") : response
  }
  const refused = (session: Session | undefined) => (error: Refusal) => Effect.succeed(refusalPage(session, error))

  /**
   * A route for a signed-in user: without a valid session a page redirects to sign-in (coming back here after it)
   * and a fragment or stream answers 401; the user's request rate is checked; refusals answer their own page.
   */
  const signedIn = <E extends Refusal, R>(
    kind: "page" | "fragment",
    handler: (session: Session, request: HttpServerRequest.HttpServerRequest) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
  ) =>
  (request: HttpServerRequest.HttpServerRequest) =>
    Effect.flatMap(withAuth(Sessions.currentSession), (found) => {
      if (Option.isNone(found)) {
        return Effect.succeed(
          kind === "page"
            ? seeOther(`${basePath}/login?next=${encodeURIComponent(request.url)}`)
            : respond(bare("Signed out", notice("Your session has ended: sign in again.", "error")), 401)
        )
      }
      const session = found.value
      return limits.admit(session.user).pipe(
        Effect.zipRight(handler(session, request)),
        Effect.catchAll(refused(session))
      )
    })

  /** An action (a form POST): the CSRF token of the session must come with it, or nothing is done (403). */
  const action = <E extends Refusal, R>(
    handler: (session: Session, form: URLSearchParams) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
  ) =>
    signedIn("page", (session, request) =>
      Effect.flatMap(formOf(request), (form) =>
        Sessions.sameCsrf(session.csrf, form.get(Sessions.csrfField) ?? request.headers[Sessions.csrfHeader])
          ? handler(session, form)
          : Effect.succeed(refusalPage(session, {
            _tag: "Forbidden",
            message: "The form's security token is missing or stale (a CSRF check): nothing was done. Reload the page and try again."
          }))))

  const show = (session: Session, section: Section, title: string, body: Html | string) =>
    Effect.succeed(respond(page(session, section, title, body)))

  const jobIdParam = Effect.map(HttpRouter.params, (params) => params["id"] ?? "")

  const overview = signedIn("page", (session) =>
    Effect.flatMap(repo.overview(session.user.ownerScope), (stats) =>
      show(session, "overview", "Overview", html`<div class="live-bar"><button type="button" data-live-toggle aria-pressed="false">Pause updates</button></div>${
        overviewStats(stats)
      }`)))

  const overviewFragment = signedIn("fragment", (session) =>
    Effect.map(repo.overview(session.user.ownerScope), (stats) => respond(overviewStats(stats))))

  const jobsPage = signedIn("page", (session, request) =>
    Effect.gen(function*() {
      const search = searchOf(request)
      const filters = { status: param(search, "status"), queue: param(search, "queue"), name: param(search, "name"), id: param(search, "id") }
      const owner = session.user.ownerScope
      if (filters.id !== undefined) {
        if (isUuid(filters.id) && (yield* jobs.exists(filters.id, { owner }))) return seeOther(jobHref(filters.id.toLowerCase()))
        const message = isUuid(filters.id) ? "No job has that id (or it is not yours)." : "A job id is a UUID, such as 01938f2e-…"
        return respond(page(session, "jobs", "Jobs", html`${notice(message, "error")}${jobsList({ filters, rows: [], cursor: undefined, nextCursor: null, after: "" })}`), isUuid(filters.id) ? 404 : 400)
      }
      // the stream's position first: whatever changes after it reaches the page live, nothing falls in between
      const after = streamCursor(yield* tail.now)
      const cursor = param(search, "cursor")
      const listed = yield* jobs.listByCursor({ ...filters, owner, cursor, limit: 50 })
      const body = jobsList({ filters, rows: listed.jobs.map(rowOfJob), cursor, nextCursor: listed.nextCursor, after })
      return respond(page(session, "jobs", "Jobs", html`${notice(notices[param(search, "notice") ?? ""])}${body}`))
    }))

  const jobDetail = signedIn("page", (session, request) =>
    Effect.gen(function*() {
      const owner = session.user.ownerScope
      const after = streamCursor(yield* tail.now)
      const job = yield* jobs.get(yield* jobIdParam, { owner })
      const history = yield* events.eventsOf(job.id, 0, 1000)
      const deliveries = yield* repo.jobDeliveries(job.id, owner)
      const body = html`${notice(notices[param(searchOf(request), "notice") ?? ""])}${jobPage({ session, job, events: history, deliveries, after })}`
      return respond(page(session, "jobs", `Job ${job.name}`, body))
    }))

  const cancel = action((session) =>
    Effect.flatMap(jobIdParam, (id) =>
      Effect.map(jobs.cancel(id, { owner: session.user.ownerScope }), (job) => seeOther(`${jobHref(job.id)}?notice=canceled`))))

  // a scheduled or pending job is marked deleted (its page stays); a finished one is purged with its history
  const remove = action((session) =>
    Effect.gen(function*() {
      const owner = session.user.ownerScope
      const before = yield* jobs.get(yield* jobIdParam, { owner })
      yield* jobs.delete(before.id, { owner })
      return before.terminal ? seeOther(`${basePath}/jobs?notice=purged`) : seeOther(`${jobHref(before.id)}?notice=deleted`)
    }))

  const requeue = action((session) =>
    Effect.gen(function*() {
      const job = yield* jobs.get(yield* jobIdParam, { owner: session.user.ownerScope })
      if (job.tracking === "task") {
        return refusalPage(session, { _tag: "InvalidTransition", message: "A job library task is pushed to its room again by its client, not copied here." })
      }
      const copy = yield* jobs.enqueue({
        name: job.name,
        queue: job.queue,
        payload: job.payload,
        priority: job.priority,
        maxAttempts: job.maxAttempts,
        tracking: job.tracking,
        ...(job.timeoutSeconds === null ? {} : { timeout: Duration.seconds(job.timeoutSeconds) }),
        ...(job.owner === null ? {} : { owner: job.owner })
      })
      return seeOther(`${jobHref(copy.id)}?notice=requeued`)
    }))

  const workers = signedIn("page", (session) =>
    Effect.flatMap(repo.workers(session.user.ownerScope), (list) =>
      show(session, "workers", "Workers", workersPage(list, new Date()))))

  const webhookList = signedIn("page", (session) =>
    Effect.gen(function*() {
      const owner = session.user.ownerScope
      const endpoints = yield* webhooks.list(owner)
      const health = yield* repo.endpointHealth(owner)
      return yield* show(session, "webhooks", "Webhooks", webhooksPage(endpoints, health))
    }))

  const webhookLog = signedIn("page", (session, request) =>
    Effect.gen(function*() {
      const owner = session.user.ownerScope
      const id = Option.getOrElse(Option.fromNullable((yield* HttpRouter.params)["id"]), () => "")
      const endpoint = yield* webhooks.get(id, owner)
      const pageNumber = Number(param(searchOf(request), "page") ?? "1")
      const log = yield* webhooks.deliveries(id, owner, { page: Number.isSafeInteger(pageNumber) ? pageNumber : 1, limit: 50 })
      const { page: at, pages } = log.pagination
      const more = html`<nav class="paging" aria-label="Pages of deliveries">${at > 1 ? html`<a href="?page=${at - 1}">← Newer</a>` : ""}${
        at < pages ? html`<a href="?page=${at + 1}" rel="next">Older →</a>` : ""
      }</nav>`
      return yield* show(session, "webhooks", "Delivery log", deliveryLog(endpoint, log.deliveries, more))
    }))

  const liveStream = signedIn("fragment", (session, request) =>
    Effect.gen(function*() {
      const search = searchOf(request)
      const params = { status: param(search, "status"), queue: param(search, "queue"), name: param(search, "name"), after: param(search, "after") }
      const lastEventId = request.headers["last-event-id"]
      const id = param(search, "id")
      if (param(search, "view") === "job" && id !== undefined) return yield* live.jobStream(session, id, params, lastEventId)
      return yield* live.jobsStream(session, params, lastEventId)
    }))

  const signInPage = (request: HttpServerRequest.HttpServerRequest) =>
    Effect.gen(function*() {
      if (Option.isSome(yield* withAuth(Sessions.currentSession))) return seeOther(basePath)
      const login = yield* Sessions.loginSecret
      const search = searchOf(request)
      const body = html`${notice(notices[param(search, "notice") ?? ""])}${
        signInForm({ csrf: Sessions.csrfOf(login.secret), next: safeNext(param(search, "next")) })
      }`
      return login.set(respond(bare("Sign in to jobwatch", body)))
    })

  const signIn = (request: HttpServerRequest.HttpServerRequest) =>
    Effect.gen(function*() {
      const form = yield* formOf(request)
      const next = safeNext(form.get("next") ?? undefined)
      const login = yield* Sessions.loginSecret
      const again = (error: string, status: number) =>
        login.set(respond(bare("Sign in to jobwatch", signInForm({ csrf: Sessions.csrfOf(login.secret), next, error })), status))
      if (!Sessions.csrfMatches(login.secret, form.get(Sessions.csrfField) ?? undefined)) {
        return again("The sign-in form was stale or came from another site (a CSRF check): sign in again.", 403)
      }
      const token = (form.get("token") ?? "").trim()
      if (token === "") return again("Paste a token to sign in.", 400)
      // a browser drops a cookie of over 4 KiB without a word: the user would land on this form again
      if (token.length > maxTokenLength) {
        return again(`That token is too long to keep in a browser's cookie (over ${maxTokenLength} characters).`, 400)
      }
      return yield* withAuth(Sessions.signIn(token)).pipe(
        Effect.map(({ setCookie }) => setCookie(seeOther(next))),
        Effect.catchAll((error) => Effect.succeed(again(`That token was refused: ${error.message}.`, 401)))
      )
    })

  const signOut = action(() => Sessions.signOut(seeOther(`${basePath}/login?notice=signedout`)))

  const asset = Effect.flatMap(HttpRouter.params, (params) => serveAsset(params["name"] ?? ""))

  return HttpLayerRouter.addAll([
    HttpLayerRouter.route("GET", basePath, overview),
    HttpLayerRouter.route("GET", `${basePath}/overview/stats`, overviewFragment),
    HttpLayerRouter.route("GET", `${basePath}/jobs`, jobsPage),
    HttpLayerRouter.route("GET", `${basePath}/jobs/:id`, jobDetail),
    HttpLayerRouter.route("POST", `${basePath}/jobs/:id/cancel`, cancel),
    HttpLayerRouter.route("POST", `${basePath}/jobs/:id/delete`, remove),
    HttpLayerRouter.route("POST", `${basePath}/jobs/:id/requeue`, requeue),
    HttpLayerRouter.route("GET", `${basePath}/workers`, workers),
    HttpLayerRouter.route("GET", `${basePath}/webhooks`, webhookList),
    HttpLayerRouter.route("GET", `${basePath}/webhooks/:id`, webhookLog),
    HttpLayerRouter.route("GET", `${basePath}/live`, liveStream),
    HttpLayerRouter.route("GET", `${basePath}/login`, signInPage),
    HttpLayerRouter.route("POST", `${basePath}/login`, signIn),
    HttpLayerRouter.route("POST", `${basePath}/logout`, signOut),
    HttpLayerRouter.route("GET", `${basePath}/assets/:name`, asset)
  ])
})

/**
 * The live dashboard at `/dashboard` (overview, jobs, a job, workers, webhooks), to mount on a host's
 * `HttpLayerRouter` beside the API: it needs the jobwatch services, a `StreamAuthentication` layer (the host's own,
 * or `Auth.layerJwt`: the dashboard verifies its session cookie's token with `accessToken`) and the configuration.
 * Every page and stream is the signed-in user's own jobs (an admin's: all); every form carries a CSRF token.
 */
export const DashboardRoutes = Layer.unwrapEffect(routes).pipe(
  // the stream tail is the process's one (layers are shared by reference within a build: `EventStream`'s own)
  Layer.provide([DashboardRepo.Default, Waits.Default, Limits.Default, StreamTail.Default, EventsRepo.Default])
)
