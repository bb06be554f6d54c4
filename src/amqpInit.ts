// `npm run amqp:init`: declares the event bus topology on JOBWATCH_AMQP_URL (the equivalent of the replaced system's
// `init_event_exchanges` script): the topic exchange JOBWATCH_AMQP_EXCHANGE (default events.jobs), the fanout
// exchange JOBWATCH_AMQP_ERP_EXCHANGE (default erp.outbound) and its binding to the first with `job.status.*`, all
// durable and idempotent (the relay declares them too at each connection). Exits 1 with one line when it cannot.
import { Cause, Effect } from "effect"
import { initTopology } from "./Amqp/init.js"
import { JobWatchConfig } from "./Config.js"

const program = initTopology.pipe(
  Effect.flatMap((line) => Effect.sync(() => process.stdout.write(`${line}\n`))),
  Effect.provide(JobWatchConfig.layerConfig),
  Effect.catchAllCause((cause) =>
    Effect.sync(() => {
      const error = Cause.squash(cause)
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
      process.exitCode = 1
    })
  )
)

Effect.runFork(program)
