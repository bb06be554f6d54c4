import type { HttpApp } from "@effect/platform"
import { HttpLayerRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { RpcSerialization, RpcServer } from "@effect/rpc"
import type { Scope } from "effect"
import { Effect, Either, Layer, Stream } from "effect"
import { InvalidInput } from "../Domain/Errors.js"
import type { JobId } from "../Domain/JobId.js"
import { makeFrameChecker } from "./rpcFrames.js"
import { Limits, RpcLimitsLive } from "./Limits.js"
import { Rpcs, StreamedEvent } from "../Rpcs.js"
import { CompletionWatcher } from "../CompletionWatcher.js"
import { CurrentUser } from "../Domain/Auth.js"
import { JobNotFound } from "../Domain/Errors.js"
import { WebhookList } from "../Domain/Webhook.js"
import { Jobs } from "../Jobs.js"
import { EventStream } from "../Streams/EventStream.js"
import { Webhooks } from "../Webhooks.js"
import { Workers } from "../Workers.js"
import { listJobs, purgeJobs } from "../Jobs/Http.js"
import { asReporter, releaseJobs, updateJob } from "../Workers/Http.js"
import { asOwner, asWorker, Waits } from "./Waits.js"
import { JobLib } from "../JobLib.js"
import { claimTasks, heartbeatTasks, readTask, updateTask } from "../JobLib/Http.js"

/** The RPC group's handlers: the services the HTTP API calls, for the `CurrentUser` the middleware provides. */
export const RpcHandlersLive = Rpcs.toLayer(Effect.gen(function*() {
  const jobs = yield* Jobs
  const workers = yield* Workers
  const watcher = yield* CompletionWatcher
  const streams = yield* EventStream
  const hooks = yield* Webhooks
  const waits = yield* Waits
  const joblib = yield* JobLib
  /** The terminal outcomes of the caller's jobs `ids` (checked first: they exist and are the caller's). */
  const waitForMany = (ids: ReadonlyArray<JobId>, mode: "all" | "any") =>
    asOwner(({ owner }) => watcher.waitMany(ids, { mode, timeout: 0, owner })).pipe(
      Effect.zipRight(
        mode === "all" ? watcher.waitForAll(ids) : Effect.map(watcher.waitForFirst(ids), (outcome) => [outcome])
      )
    )
  return Rpcs.of({
    JobEnqueue: (body) => Effect.flatMap(CurrentUser, (user) => jobs.enqueue({ ...body, owner: user.sub })),
    JobEnqueueBatch: (body) =>
      Effect.flatMap(CurrentUser, (user) => jobs.enqueueBatch(body.jobs.map((job) => ({ ...job, owner: user.sub })))),
    JobGet: ({ afterVersion, id, wait }) =>
      asOwner((scope) => waits.longPoll(id, waits.view("job", scope), jobs.get(id, scope), { wait, afterVersion })),
    JobStatus: ({ afterVersion, id, wait }) =>
      asOwner((scope) =>
        waits.longPoll(id, waits.view("status", scope), jobs.status(id, scope), { wait, afterVersion })
      ),
    JobList: (params) => listJobs(jobs, params),
    JobCancel: ({ id }) => asOwner((scope) => jobs.cancel(id, scope)),
    JobDelete: ({ id }) => asOwner((scope) => jobs.delete(id, scope)).pipe(Effect.catchTag("NotJobHolder", Effect.die)),
    JobsPurge: (body) => purgeJobs(jobs, body),
    JobWait: ({ id }) =>
      asOwner(({ owner }) =>
        Effect.flatMap(jobs.exists(id, { owner }), (found) => (found ? watcher.waitFor(id) : new JobNotFound({ id })))
      ),
    JobWaitAll: ({ ids }) => waitForMany(ids, "all"),
    JobWaitFirst: ({ ids }) => Effect.map(waitForMany(ids, "any"), (outcomes) => outcomes[0]!),
    JobWatch: ({ afterVersion, id }) =>
      Stream.unwrap(asOwner(({ owner }) =>
        Effect.map(streams.jobEvents(id, { owner, afterVersion }), (events) =>
          waits.untilDrained(events).pipe(Stream.map((item) => item.event)))
      )),
    EventsWatch: ({ cursor, ...filter }) =>
      Stream.unwrap(asOwner(({ owner }) =>
        Effect.map(streams.userEvents({ ...filter, owner }, cursor), (events) =>
          waits.untilDrained(events).pipe(Stream.map((item) => new StreamedEvent(item, true))))
      )),
    WorkerClaim: ({ workerId, ...body }) =>
      Effect.zipRight(
        asWorker(workerId),
        workers.claim(workerId, { ...body, wait: waits.cap(body.wait), until: waits.draining })
      ),
    WorkerRelease: ({ ids, workerId }) => releaseJobs(workers, workerId, ids),
    WorkerHeartbeat: ({ workerId }) => Effect.zipRight(asWorker(workerId), workers.heartbeat(workerId)),
    JobUpdate: ({ id, ...body }) => updateJob(workers, id, body),
    JobProgress: ({ id, workerId, ...report }) =>
      Effect.zipRight(asReporter(workers, id, workerId), workers.progress(id, report, { workerId })),
    JobAttach: ({ artefacts, id, workerId }) =>
      Effect.zipRight(asReporter(workers, id, workerId), workers.attach(id, artefacts, { workerId })),
    JobTypeRegister: ({ roomId, ...body }) => Effect.flatMap(CurrentUser, (user) => joblib.register(user, roomId, body)),
    JobTypeList: ({ roomId, ...page }) => Effect.flatMap(CurrentUser, (user) => joblib.list(user, roomId, page)),
    JobTypeGet: ({ jobName, roomId }) => Effect.flatMap(CurrentUser, (user) => joblib.get(user, roomId, jobName)),
    JobTypeUnregister: ({ jobName, roomId, workerId }) =>
      Effect.flatMap(CurrentUser, (user) => joblib.unregister(user, roomId, jobName, workerId)),
    TaskPush: ({ jobName, payload, roomId, ...options }) =>
      Effect.flatMap(CurrentUser, (user) => joblib.push(user, roomId, jobName, payload, options)),
    TaskClaim: (body) => claimTasks(joblib, waits, body),
    TaskGet: ({ afterVersion, taskId, wait }) => readTask(joblib, waits, taskId, { wait, afterVersion }),
    TaskUpdate: ({ taskId, ...body }) => updateTask(joblib, taskId, body),
    TaskWorkerHeartbeat: ({ workerId }) => heartbeatTasks(joblib, workerId),
    WebhookList: () =>
      asOwner(({ owner }) => Effect.map(hooks.list(owner), (webhooks) => WebhookList.make({ webhooks }))),
    WebhookCreate: (body) => Effect.flatMap(CurrentUser, (user) => hooks.create(user.sub, body)),
    WebhookGet: ({ id }) => asOwner(({ owner }) => hooks.get(id, owner)),
    WebhookUpdate: ({ id, ...changes }) => asOwner(({ owner }) => hooks.update(id, owner, changes)),
    WebhookDelete: ({ id }) => asOwner(({ owner }) => hooks.remove(id, owner)),
    WebhookRotateSecret: ({ id }) => asOwner(({ owner }) => hooks.rotateSecret(id, owner)),
    WebhookDeliveries: ({ id, limit, page }) => asOwner(({ owner }) => hooks.deliveries(id, owner, { page, limit }))
  })
})).pipe(Layer.provide(Waits.Default))

const refused = (error: InvalidInput) => HttpServerResponse.unsafeJson(error, { status: 400 })

/** `request` with its body replaced by `text`. */
const withText = (request: HttpServerRequest.HttpServerRequest, text: string): HttpServerRequest.HttpServerRequest =>
  Object.create(request, { text: { value: Effect.succeed(text) } })

/** `response` with `answers` (NDJSON) before its body. */
const prepend = (response: HttpServerResponse.HttpServerResponse, answers: string) => {
  const body = response.body
  const rest = body._tag === "Uint8Array" ? Stream.make(body.body) : body._tag === "Stream" ? body.stream : Stream.empty
  return HttpServerResponse.stream(Stream.concat(Stream.make(new TextEncoder().encode(answers)), rest), {
    status: response.status,
    contentType: "application/ndjson"
  })
}

/**
 * The RPC server's HTTP app behind a check of its frames (see `internal/rpcFrames.ts`): a malformed frame is 400
 * `InvalidInput` naming it, a request whose payload does not decode gets its RPC's `InvalidInput`, never a defect.
 */
const checked = (app: HttpApp.Default<never, Scope.Scope>) => {
  const check = makeFrameChecker()
  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const text = yield* Effect.either(request.text)
    if (Either.isLeft(text)) return refused(new InvalidInput({ field: "body", message: "could not be read" }))
    const frames = check(text.right)
    if (Either.isLeft(frames)) return refused(frames.left)
    const response = yield* Effect.provideService(app, HttpServerRequest.HttpServerRequest, withText(request, frames.right.forward))
    return frames.right.answers === "" ? response : prepend(response, frames.right.answers)
  })
}

/** The RPC server's protocol: NDJSON over HTTP `POST /rpc`, its frames checked first. */
const ProtocolLive = Layer.effect(
  RpcServer.Protocol,
  Effect.gen(function*() {
    const router = yield* HttpLayerRouter.HttpRouter
    const { httpApp, protocol } = yield* RpcServer.makeProtocolWithHttpApp
    yield* router.add("POST", "/rpc", checked(httpApp))
    return protocol
  })
)

/**
 * The RPC routes, to mount on a host's `HttpLayerRouter`: NDJSON over HTTP on `/rpc` (streams arrive as they
 * happen). They need an `RpcAuthentication` layer (the host's own, or `Auth.layerJwt`) and the jobwatch services;
 * the per-user limits (`RpcLimits`) are their own, shared with the HTTP API's.
 */
export const RpcRoutes = RpcServer.layer(Rpcs).pipe(
  Layer.provide(ProtocolLive),
  Layer.provide([RpcHandlersLive, RpcLimitsLive]),
  Layer.provide([RpcSerialization.layerNdjson, Limits.Default])
)
