/**
 * Typed clients of a jobwatch service, for programs in other processes: the HTTP API's `HttpApiClient`, the RPC
 * group's `RpcClient`, and a `WorkerBackend` over HTTP so that `Worker.run` works there as it does in-process.
 * Each needs an `HttpClient` (e.g. `FetchHttpClient.layer` or `NodeHttpClient.layerUndici`).
 */
import { HttpApiClient, HttpClient } from "@effect/platform"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { Duration, Effect, Layer, Option } from "effect"
import { Api } from "./Api.js"
import type { WorkerBackendShape } from "./Workers/WorkerBackend.js"
import { WorkerBackend } from "./Workers/WorkerBackend.js"
import { Rpcs } from "./Rpcs.js"
import { JobId } from "./Domain/JobId.js"

/** A job id the backend was given by a claim, as the API's path wants it (the server checks it again). */
const jobIdOf = (id: string): JobId => JobId.make(id.toLowerCase(), { disableValidation: true })

import { authenticate, subOf } from "./Client/options.js"
import type { ClientOptions } from "./Client/options.js"

export { subOf } from "./Client/options.js"
export type { ClientOptions } from "./Client/options.js"
/** The job library's client: a `JobManager` for a room (`make` for Effect, `open` for Promises and `for await`). */
export { AsyncJobManager, JobManager } from "./Client/JobManager.js"
export type {
  AsyncRegistration, AsyncTask, AsyncTaskContext, JobManagerOptions, PayloadSchema, RegisteredJobType, Registration, Task, TaskContext
} from "./Client/JobManager.js"

/** `Worker.run` and its `WorkerBackend` port, without the server: give it `httpWorkerBackend`. */
export * as Worker from "./Workers/WorkerLoop.js"
/** The domain's schemas, ids and errors. */
export * as Domain from "./Domain/index.js"

/** The HTTP API's derived client (`client.jobs.enqueue(…)`, `client.workers.claim(…)`, …). */
export const httpClient = (options: ClientOptions) =>
  HttpApiClient.make(Api, { baseUrl: options.baseUrl, transformClient: authenticate(options) })

/** The RPC group's client over NDJSON on `<baseUrl>/rpc` (streams arrive as they happen); lives in the scope. */
export const rpcClient = (options: ClientOptions) =>
  RpcClient.make(Rpcs).pipe(
    Effect.provide(
      RpcClient.layerProtocolHttp({ url: `${options.baseUrl.replace(/\/$/, "")}/rpc`, transformClient: authenticate(options) })
        .pipe(Layer.provide(RpcSerialization.layerNdjson))
    )
  )

/**
 * `WorkerBackend` over the HTTP API: `Worker.run` in another process claims (waiting on the server, no polling),
 * heartbeats (which reports cancel requests), reports progress and ends jobs through HTTP. Needs a token with the
 * `worker` role. A worker token acts only as the worker ids `<sub>` and `<sub>:…`: `Worker.run`'s default id is
 * `<sub>:<host>-<pid>-<random>` (`workerNamespace`, when set, instead of the token's `sub`: for credentials that
 * are not a JWT).
 */
export const httpWorkerBackend = (
  options: ClientOptions & { readonly workerNamespace?: string | undefined }
): Layer.Layer<WorkerBackend, never, HttpClient.HttpClient> =>
  Layer.effect(
    WorkerBackend,
    Effect.map(httpClient(options), (client): WorkerBackendShape => ({
      workerNamespace: options.workerNamespace ??
        (options.token === undefined ? undefined : Option.getOrUndefined(subOf(options.token))),
      // interruptible even when called uninterruptibly (Worker.run): a job the server committed to an interrupted
      // request is given back by the server, or by the reaper when the answer was on its way
      claim: (workerId, claim) =>
        Effect.map(
          Effect.interruptible(client.workers.claim({
            path: { workerId },
            payload: {
              queues: claim.queues,
              names: claim.names,
              limit: claim.limit,
              wait: claim.wait === undefined ? undefined : Duration.decode(claim.wait),
              start: claim.start,
              heartbeatInterval: claim.heartbeatInterval === undefined ? undefined : Duration.decode(claim.heartbeatInterval)
            }
          })),
          (result) => result.jobs
        ),
      heartbeat: (workerId) => client.workers.heartbeat({ path: { workerId } }),
      progress: (id, report, scope) =>
        client.workers.progress({
          path: { id: jobIdOf(id) },
          payload: { workerId: scope.workerId, percent: report.percent, step: report.step, message: report.message, data: report.data, force: report.force }
        }),
      complete: (id, scope) =>
        client.workers.update({
          path: { id: jobIdOf(id) },
          payload: { workerId: scope.workerId ?? "", status: "completed", result: scope.result, message: scope.message }
        }),
      fail: (id, failure) =>
        client.workers.update({
          path: { id: jobIdOf(id) },
          payload: {
            workerId: failure.workerId ?? "",
            status: "failed",
            error: { code: failure.code, message: failure.error, retryable: failure.retryable },
            message: failure.message
          }
        }),
      canceled: (id, scope) =>
        client.workers.update({ path: { id: jobIdOf(id) }, payload: { workerId: scope.workerId ?? "", status: "canceled", message: scope.message } }),
      release: (workerId, ids) => client.workers.release({ path: { workerId }, payload: { ids } })
    }))
  )
