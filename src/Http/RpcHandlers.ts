import type { HttpApp } from "@effect/platform"
import { HttpLayerRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { RpcSerialization, RpcServer } from "@effect/rpc"
import type { Scope } from "effect"
import { Effect, Either, Layer, Stream } from "effect"
import { InvalidInput } from "../Domain/Errors.js"
import { makeFrameChecker } from "./rpcFrames.js"
import { Limits, RpcLimitsLive } from "./Limits.js"
import { Operations } from "../Operations.js"
import { Rpcs, StreamedEvent } from "../Rpcs.js"

/** The RPC group's handlers: the same `Operations` as the HTTP API, for the `CurrentUser` the middleware provides. */
export const RpcHandlersLive = Rpcs.toLayer(Effect.gen(function*() {
  const ops = yield* Operations
  return Rpcs.of({
    JobEnqueue: (body) => ops.enqueue(body),
    JobEnqueueBatch: ({ jobs }) => ops.enqueueBatch(jobs),
    JobGet: ({ afterVersion, id, wait }) => ops.get(id, { wait, afterVersion }),
    JobStatus: ({ afterVersion, id, wait }) => ops.status(id, { wait, afterVersion }),
    JobList: (params) => ops.list(params),
    JobCancel: ({ id }) => ops.cancel(id),
    JobDelete: ({ id }) => ops.remove(id),
    JobsPurge: (body) => ops.purge(body),
    JobWait: ({ id }) => ops.waitFor(id),
    JobWaitAll: ({ ids }) => ops.waitForMany(ids, "all"),
    JobWaitFirst: ({ ids }) => Effect.map(ops.waitForMany(ids, "any"), (outcomes) => outcomes[0]!),
    JobWatch: ({ afterVersion, id }) =>
      Stream.unwrap(Effect.map(ops.jobEvents(id, { afterVersion }), Stream.map((item) => item.event))),
    EventsWatch: ({ cursor, ...filter }) =>
      Stream.unwrap(Effect.map(ops.userEvents(filter, cursor), Stream.map((item) => new StreamedEvent(item, true)))),
    WorkerClaim: ({ workerId, ...body }) => ops.claim(workerId, body),
    WorkerRelease: ({ ids, workerId }) => ops.release(workerId, ids),
    WorkerHeartbeat: ({ workerId }) => ops.heartbeat(workerId),
    JobUpdate: ({ id, ...body }) => ops.update(id, body),
    JobProgress: ({ id, ...body }) => ops.progress(id, body),
    WebhookList: () => ops.webhooks.list,
    WebhookCreate: (body) => ops.webhooks.create(body),
    WebhookGet: ({ id }) => ops.webhooks.get(id),
    WebhookUpdate: ({ id, ...changes }) => ops.webhooks.update(id, changes),
    WebhookDelete: ({ id }) => ops.webhooks.remove(id),
    WebhookRotateSecret: ({ id }) => ops.webhooks.rotateSecret(id),
    WebhookDeliveries: ({ id, limit, page }) => ops.webhooks.deliveries(id, page, limit)
  })
})).pipe(Layer.provide(Operations.Default))

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
