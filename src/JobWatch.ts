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
import * as Worker from "./Workers/Worker.js"
import { Workers } from "./Workers.js"

/** Runs the pending migrations when built (before the services that follow it start). */
export const MigrationsLive = Layer.effectDiscard(Migrations.run())

/**
 * Every jobwatch service, with the migrations run first. Requires a `PgClient`/`SqlClient` and `JobWatchConfig`.
 */
export const layer = Worker.local.pipe(
  Layer.provideMerge(Layer.mergeAll(
    Jobs.Default,
    CompletionWatcher.Default,
    Listener.Default,
    Workers.Default,
    ProgressReporter.Default,
    Reaper.Default,
    EventStream.Default,
    Webhooks.Default,
    WebhookDeliverer.Default
  )),
  Layer.provide(MigrationsLive)
)

/** `layer` on the configuration read from the environment and its database (embedded when `DATABASE_URL` is unset). */
export const layerConfig = layer.pipe(
  Layer.provideMerge(Database.layer),
  Layer.provideMerge(JobWatchConfig.layerConfig)
)

/** The services `layer` provides. */
export type Services = Layer.Layer.Success<typeof layer>
