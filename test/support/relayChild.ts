// The event bus relay alone, in a process of its own (database argv[2], schema argv[3], broker argv[4], exchanges
// argv[5] and argv[6]): prints "armed" once it is the relay with its cursor, then relays until it is killed. The
// "relay's process killed mid-run" of test/Amqp.test.ts.
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { AmqpRelay } from "../../src/Amqp/Relay.js"
import { JobWatchConfig } from "../../src/Config.js"

const [url, schema, amqpUrl, exchange, erpExchange] = process.argv.slice(2)
if (url === undefined || schema === undefined || amqpUrl === undefined || exchange === undefined || erpExchange === undefined) {
  throw new Error("usage: relayChild <url> <schema> <amqp url> <exchange> <erp exchange>")
}

const program = Effect.gen(function*() {
  const relay = yield* AmqpRelay
  while (!(yield* relay.stats).armed) yield* Effect.sleep("20 millis")
  process.stdout.write("armed\n")
  return yield* Effect.never
}).pipe(
  Effect.provide(AmqpRelay.Default),
  Effect.provide(Layer.merge(
    PgClient.layer({ url: Redacted.make(url), maxConnections: 2 }),
    JobWatchConfig.layer({ schema, amqpUrl, amqpExchange: exchange, amqpErpExchange: erpExchange })
  ))
)

Effect.runFork(Effect.scoped(program))
