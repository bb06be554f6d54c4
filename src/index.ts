/**
 * jobwatch as a library: the domain, the API definitions, the services, the Layers that provide them, and the
 * route layers an Effect application mounts on its own `HttpLayerRouter` with its own authentication.
 */

// ---- the domain: schemas and typed errors ----
/** Jobs, their events, statuses and worker messages (Effect `Schema`s). */
export * from "./Domain/Job.js"
export * from "./Domain/JobEvent.js"
export * from "./Domain/JobId.js"
export * from "./Domain/JobStatus.js"
export * from "./Domain/JobLib.js"
export * from "./Domain/Worker.js"
export * from "./Domain/TraceContext.js"
/** The typed errors, each with its HTTP status. */
export * from "./Domain/Errors.js"
/** The caller (`CurrentUser`, `User`) and the auth errors (`Unauthorized`, `Forbidden`). */
export * from "./Domain/Auth.js"

// ---- the API definitions (no server code) ----
/** The HttpApi definition, with the `Authentication` and `StreamAuthentication` middleware ports. */
export * as Api from "./Api.js"
/** The RPC group and its `RpcAuthentication` middleware port. */
export * as Rpcs from "./Rpcs.js"

// ---- the services ----
/** Enqueue, read, list, cancel and delete jobs. */
export { Jobs } from "./Jobs.js"
export type { EnqueueOptions, ListOptions, OwnerScope, PurgeOptions } from "./Jobs.js"
/** Await jobs live: `waitFor`, `waitForAll`, `waitForFirst`, `watchMany` (each outcome as it lands), `awaitCompletion`, `watch`, `changes`. */
export { CompletionWatcher } from "./CompletionWatcher.js"
/** The worker protocol: claim, heartbeat, start, complete, fail, cancel, release. */
export { Workers } from "./Workers.js"
export type { ClaimOptions, CompleteItem, FailOptions, WorkerScope } from "./Workers.js"
/** Job types and rooms: register types with JSON Schemas, push tasks, claim them as the types' workers. */
export { JobLib } from "./JobLib.js"
/** Throttled, monotonic progress. */
export { ProgressReporter } from "./Workers/ProgressReporter.js"
export type { ProgressReport } from "./Workers/ProgressReporter.js"
/** One job's events, and a user's live events, resumable by cursor. */
export { EventStream } from "./Streams/EventStream.js"
/** The cluster's one reaper (leases, timeouts, scheduled jobs, silent workers). */
export { Reaper } from "./Workers/Reaper.js"
/** An Effect-native worker loop (`Worker.run`) over a `WorkerBackend`: in-process, or over HTTP (`client.ts`). */
export * as Worker from "./Workers/Worker.js"
/** `startJob`, `progress`, `completeJob`, `failJob`: the names of the systems jobwatch replaces. */
export * as WorkerHelpers from "./Workers/WorkerHelpers.js"

// ---- layers ----
/** Configuration: `JobWatchConfig.layer({...})` for embedders, `layerConfig` from the environment. */
export { JobWatchConfig } from "./Config.js"
export type { JobWatchConfigInput, JobWatchConfigShape } from "./Config.js"
/**
 * `JobWatch.layer` (needs a `PgClient` and config; runs migrations; provides every service), the layers by role
 * (`producerLayer`: enqueue, read, wait; `workerLayer()`: claim, run, progress, no reaper unless asked) and
 * `layerConfig`. The host's `PgClient` layer sizes the pool (`JOBWATCH_POOL_SIZE` is for `npm start`'s service).
 */
export * as JobWatch from "./JobWatch.js"
/** JWT verification (`layerJwt`), token minting (`mint`), keys from the environment (`keysFromEnv`). */
export * as Auth from "./Auth.js"
/**
 * OTLP traces: `Traces.layerConfig()` as `npm start` configures them (`OTEL_EXPORTER_OTLP_ENDPOINT`; unset: nothing
 * loaded), `Traces.layer({ url })`, and `Traces.propagation` for a host exporting Effect's spans by itself.
 */
export * as Traces from "./Traces.js"

// ---- routes, to mount on a host's HttpLayerRouter ----
/**
 * `HttpRoutes`: the HTTP API (needs `Authentication` and `StreamAuthentication` layers and the services);
 * `RoutesLive`: everything `npm start` serves; `ServerLive`: the whole server with JWT auth; `routerConfig`: the
 * router settings to serve them with (worker ids of over 100 characters in paths need them).
 */
export { HttpRoutes, routerConfig, RoutesLive } from "./Http.js"
/**
 * `RequestBodies`: the body limits of `npm start`'s server (413 over `maxBodyBytes`, 400 for JSON that does not parse
 * or nests too deep, 415 for multipart and form bodies, excerpts in 4xx answers). Global middleware: mounted beside
 * `HttpRoutes`, it applies to the host's routes too.
 */
export { RequestBodies } from "./Http/RequestBodies.js"
/** The per-user limits the routes apply (rate, open streams and waits), and the drain signal `ServerLive` uses. */
export { Limits } from "./Http/Limits.js"
export { Shutdown } from "./Http/Shutdown.js"
export { ServerLive } from "./Http/Server.js"
/**
 * `Metrics`: this process's metrics in the Prometheus text format (`scrape`), `JobWatch.layer` includes it (the
 * database gauges come from the reaper's process alone); `MetricsRoute`: `GET /metrics` for admins (or anyone with
 * `metricsPublic`), to mount beside `HttpRoutes` (needs `Metrics` and an `Authentication` layer); `PoolStats`: a
 * `pg.Pool` whose connection gauges to report.
 */
export { Metrics, PoolStats } from "./Metrics.js"
export { MetricsRoute } from "./Metrics/Http.js"
/**
 * `DashboardRoutes`: the live dashboard at `/dashboard`, to mount beside `HttpRoutes` (needs the services and a
 * `StreamAuthentication` layer, whose `accessToken` verifies the token a user signs in with).
 */
export { DashboardRoutes } from "./Dashboard.js"
/** `RpcRoutes`: the RPC group on `/rpc` (needs an `RpcAuthentication` layer and the services). */
export { RpcRoutes } from "./Http/RpcHandlers.js"
/**
 * Socket.IO on a host's own `http.Server` (`SocketIo.layer(server)`, needs a `SocketAuthentication` layer and the
 * services; `ServerLive` includes it), and the names of its events (`socketEventKind`).
 */
export * as SocketIo from "./SocketIo.js"

// ---- clients ----
/** `httpClient`, `rpcClient` and `httpWorkerBackend` from a base URL and a token. */
export * as Client from "./client.js"
