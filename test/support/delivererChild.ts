// A webhook deliverer in a process of its own, on the database argv[2] and schema argv[3], with the attempt timeout
// argv[4] (milliseconds); loopback targets allowed. Prints `ready` once it runs, and runs until killed.
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Redacted } from "effect"
import { JobWatchConfig } from "../../src/Config.js"
import { WebhookDeliverer } from "../../src/Webhooks/WebhookDeliverer.js"

const [url, schema, timeout] = process.argv.slice(2)
if (url === undefined || schema === undefined || timeout === undefined) {
  throw new Error("usage: delivererChild <url> <schema> <timeout>")
}

const program = Effect.gen(function*() {
  yield* WebhookDeliverer
  process.stdout.write("ready\n")
  yield* Effect.never
}).pipe(
  Effect.provide(WebhookDeliverer.Default.pipe(
    Layer.provide(Layer.merge(
      PgClient.layer({ url: Redacted.make(url), maxConnections: 4 }),
      JobWatchConfig.layer({
        schema,
        webhookAllowPrivate: true,
        webhookTimeout: Duration.millis(Number(timeout)),
        refreshInterval: "1 second"
      })
    ))
  ))
)

Effect.runPromise(program).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`)
    process.exit(1)
  }
)
