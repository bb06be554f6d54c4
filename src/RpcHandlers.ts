import { RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Layer, Stream } from "effect"
import { Limits, RpcLimitsLive } from "./Limits.js"
import { Operations } from "./Operations.js"
import { Rpcs, StreamedEvent } from "./Rpcs.js"

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

/**
 * The RPC routes, to mount on a host's `HttpLayerRouter`: NDJSON over HTTP on `/rpc` (streams arrive as they
 * happen). They need an `RpcAuthentication` layer (the host's own, or `Auth.layerJwt`) and the jobwatch services;
 * the per-user limits (`RpcLimits`) are their own, shared with the HTTP API's.
 */
export const RpcRoutes = RpcServer.layerHttpRouter({ group: Rpcs, path: "/rpc", protocol: "http" }).pipe(
  Layer.provide([RpcHandlersLive, RpcLimitsLive]),
  Layer.provide([RpcSerialization.layerNdjson, Limits.Default])
)
