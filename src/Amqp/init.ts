import * as amqp from "amqplib"
import { Effect, Option, Redacted } from "effect"
import { JobWatchConfig } from "../Config.js"
import { declareTopology } from "./Relay.js"

/** Declares the topology on JOBWATCH_AMQP_URL; answers the line to print. */
export const initTopology = Effect.gen(function*() {
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
  return `declared ${topology.exchange} (topic), ${topology.erpExchange} (fanout) bound to it with job.status.*`
})
