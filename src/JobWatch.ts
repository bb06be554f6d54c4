import { Layer } from "effect"
import { JobWatchConfig } from "./Config.js"
import * as Database from "./Database.js"
import { CompletionWatcher } from "./CompletionWatcher.js"
import { EventStream } from "./Streams/EventStream.js"
import { WebhookDeliverer } from "./Webhooks/WebhookDeliverer.js"
import { Webhooks } from "./Webhooks.js"
import { Jobs } from "./Jobs.js"
import { Listener } from "./EventLog/Listener.js"
import * as Migrations from "./Database/Migrations.js"
import { ProgressReporter } from "./Workers/ProgressReporter.js"
import { Reaper } from "./Workers/Reaper.js"
import { AmqpRelay } from "./Amqp/Relay.js"
import * as Worker from "./Workers/Worker.js"
import { Workers } from "./Workers.js"
import { JobLib } from "./JobLib.js"
import { Metrics } from "./Metrics.js"

// The layers below need the host's `PgClient` (and `SqlClient`) and a `JobWatchConfig`. The host sizes the pool in
// its own `PgClient` layer (`PgClient.layer({ url, maxConnections })`): `JOBWATCH_POOL_SIZE` is the pool of
// `npm start`'s service (`layerConfig`). The `Listener` (the LISTEN connection) and the reaper hold one connection
// each besides the pool.

/** Runs the pending migrations when built (before the services that follow it start). */
export const MigrationsLive = Layer.effectDiscard(Migrations.run())

/**
 * Every jobwatch service, with the migrations run first: a producer's, a worker's, the reaper (electing itself
 * when `reaper` is on), the event streams, webhook endpoints and the webhook deliverer (when `webhooks` is on), and
 * the event bus relay (electing itself when `amqpUrl` is set and `amqpRelay` on), the job library (`JobLib`), and
 * the Prometheus metrics (`Metrics`, which the reaper's process completes with the gauges read from the database).
 */
export const layer = Worker.local.pipe(
  Layer.provideMerge(Layer.provideMerge(Metrics.Default, Layer.mergeAll(
    Jobs.Default,
    CompletionWatcher.Default,
    Listener.Default,
    Workers.Default,
    ProgressReporter.Default,
    Reaper.Default,
    EventStream.Default,
    Webhooks.Default,
    WebhookDeliverer.Default,
    AmqpRelay.Default,
    JobLib.Default
  ))),
  Layer.provide(MigrationsLive)
)

/**
 * A producer's services, with the migrations run first: enqueue, read, list, cancel (`Jobs`), wait for jobs
 * (`CompletionWatcher`) and follow their events (`EventStream`), on the LISTEN connection (`Listener`). No worker
 * protocol, reaper or webhook deliverer runs.
 */
export const producerLayer = Layer.mergeAll(Jobs.Default, CompletionWatcher.Default, Listener.Default, EventStream.Default)
  .pipe(Layer.provide(MigrationsLive))

const workerServices = Worker.local.pipe(
  Layer.provideMerge(Layer.merge(Workers.Default, ProgressReporter.Default)),
  Layer.provide(MigrationsLive)
)

/** The services `workerLayer` provides. */
export type WorkerServices = Layer.Layer.Success<typeof workerServices>

/**
 * A worker process's services, with the migrations run first: claim, heartbeat, progress and end jobs
 * (`Workers`, `ProgressReporter`), and `Worker.run` in this process (`Worker.local`'s `WorkerBackend`). No
 * completion watcher, event stream or webhook deliverer, and no reaper unless asked: `workerLayer({ reaper: true })`
 * adds the `Reaper`, which takes part in the election as the `reaper` config says (somewhere in the cluster one
 * process must, or expired leases, timeouts and due scheduled jobs wait).
 */
export function workerLayer(options: { readonly reaper: true }): Layer.Layer<
  WorkerServices | Reaper,
  Layer.Layer.Error<typeof workerServices> | Layer.Layer.Error<typeof Reaper.Default>,
  Layer.Layer.Context<typeof workerServices> | Layer.Layer.Context<typeof Reaper.Default>
>
export function workerLayer(options?: { readonly reaper?: false | undefined }): typeof workerServices
export function workerLayer(options: { readonly reaper?: boolean | undefined } = {}) {
  return options.reaper === true ? Layer.merge(workerServices, Reaper.Default.pipe(Layer.provide(MigrationsLive))) : workerServices
}

/** `layer` on the configuration read from the environment and its database (embedded when `DATABASE_URL` is unset). */
export const layerConfig = layer.pipe(
  Layer.provideMerge(Database.layer),
  Layer.provideMerge(JobWatchConfig.layerConfig)
)

/** The services `layer` provides. */
export type Services = Layer.Layer.Success<typeof layer>

/** The services `producerLayer` provides. */
export type ProducerServices = Layer.Layer.Success<typeof producerLayer>
