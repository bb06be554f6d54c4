// `npm run amqp:init`: declares the event bus topology on JOBWATCH_AMQP_URL (the equivalent of the replaced system's
// `init_event_exchanges` script): the topic exchange JOBWATCH_AMQP_EXCHANGE (default events.jobs), the fanout
// exchange JOBWATCH_AMQP_ERP_EXCHANGE (default erp.outbound) and its binding to the first with `job.status.*`, all
// durable and idempotent (the relay declares them too at each connection). Exits 1 with one line when it cannot.
import * as amqp from "amqplib"
import { Cause, Effect, Option, Redacted } from "effect"
import { declareTopology } from "./Amqp/Relay.js"
import { JobWatchConfig } from "./Config.js"

const program = Effect.gen(function*() {
  const config = yield* JobWatchConfig
  if (Option.isNone(config.amqpUrl)) return yield* Effect.fail(new Error("set JOBWATCH_AMQP_URL (amqp://user:password@host:5672)"))
  const url = Redacted.value(config.amqpUrl.value)
  const topology = { exchange: config.amqpExchange, erpExchange: config.amqpErpExchange, allProgress: false }
  yield* Effect.tryPromise({
    try: async () => {
      const connection = await amqp.connect(url)
      try {
        await declareTopology(await connection.createChannel(), topology)
      } finally {
        await connection.close().catch(() => undefined)
      }
    },
    catch: (cause) => new Error(`cannot declare the topology: ${cause instanceof Error ? cause.message : String(cause)}`)
  })
  yield* Effect.sync(() =>
    process.stdout.write(
      `declared ${topology.exchange} (topic), ${topology.erpExchange} (fanout) bound to it with job.status.*\n`
    )
  )
}).pipe(
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
