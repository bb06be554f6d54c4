// The `jobwatch` command (package.json `bin`), bundled into one file (`dist/cli.js`, see scripts/build-cli.mjs) so
// that it starts fast. The commands that run the service or work on the database load the built modules beside it
// (`dist/main.js`, `dist/Cli/local.js`), which find `sql/` where the package keeps it.
//
// Exit codes: 0 done; 1 it failed (the service, the database, the broker: one line on stderr); 2 the command line
// is wrong (the reason, and the command's usage).
import { Command, Options, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Console, Duration, Effect, Option } from "effect"
import { initTopology } from "./Amqp/init.js"
import * as Auth from "./Auth.js"
import { remoteCommands } from "./Cli/remote.js"
import { durationOption, RemoteUsageError } from "./Cli/service.js"
import { oneLine } from "./Cli/oneLine.js"
import { mintToken, UsageError } from "./Cli/token.js"
import { worker } from "./Cli/worker.js"
import { JobWatchConfig } from "./Config.js"
import { version } from "./version.js"

/** A built module beside this file, loaded at run time (not bundled). */
const besides = (path: string) => import(/* @vite-ignore */ new URL(path, import.meta.url).href)

const token = Command.make("token", {
  sub: Options.text("sub").pipe(Options.withDescription("the user the token is for (its owner of jobs)")),
  roles: Options.choice("role", ["worker", "admin"]).pipe(
    Options.repeated,
    Options.withDescription("a role: worker (claims and reports), admin (sees everything); repeat for both")
  ),
  ttl: Options.text("ttl").pipe(Options.withDefault("1h"), Options.withDescription("how long it is valid: 15m, 1h, 30d"))
}, ({ roles, sub, ttl }) =>
  mintToken({ sub, roles, ttl }).pipe(
    Effect.flatMap((minted) => Console.log(minted)),
    Effect.provide(Auth.keysFromEnv),
    Effect.provide(JobWatchConfig.layerConfig)
  )).pipe(Command.withDescription("Print a bearer token signed with the service's secret, and nothing else."))

// run before this parser (see the end): here for its help
const serve = Command.make("serve", {}, () => Effect.void).pipe(
  Command.withDescription("Run the service (what npm start does), until SIGINT or SIGTERM.")
)

const migrate = Command.make("migrate", {}, () =>
  Effect.tryPromise({
    try: async () => (await besides("./Cli/local.js")).migrate() as Promise<ReadonlyArray<number>>,
    catch: (cause) => cause
  }).pipe(
    Effect.flatMap((applied) =>
      Console.log(applied.length === 0 ? "the schema is up to date" : `applied migrations ${applied.join(", ")}`)
    )
  )).pipe(Command.withDescription("Apply the pending migrations to DATABASE_URL (the embedded database without it)."))

const purge = Command.make("purge", {
  olderThan: durationOption("older-than", "purge the jobs that finished longer ago than this (30d, 12h)"),
  status: Options.text("status").pipe(Options.optional, Options.withDescription("only these finished statuses (comma-separated)")),
  queue: Options.text("queue").pipe(Options.optional, Options.withDescription("only this queue")),
  limit: Options.integer("limit").pipe(Options.optional, Options.withDescription("purge at most this many (1 to 10,000)"))
}, ({ limit, olderThan, queue, status }) =>
  Effect.tryPromise({
    try: async () =>
      (await besides("./Cli/local.js")).purge({
        olderThanMs: Duration.toMillis(olderThan),
        status: Option.getOrUndefined(status),
        queue: Option.getOrUndefined(queue),
        limit: Option.getOrUndefined(limit)
      }) as Promise<{ readonly purged: number; readonly more: boolean }>,
    catch: (cause) => cause
  }).pipe(
    Effect.flatMap(({ more, purged }) => Console.log(`purged ${purged} finished jobs${more ? " (more are left: run it again)" : ""}`))
  )).pipe(Command.withDescription("Remove finished jobs, with their events and deliveries, oldest first."))

const amqpInit = Command.make("init", {}, () =>
  initTopology.pipe(Effect.flatMap(Console.log), Effect.provide(JobWatchConfig.layerConfig))).pipe(
    Command.withDescription("Declare the event bus exchanges and binding on JOBWATCH_AMQP_URL (idempotent).")
  )
const amqp = Command.make("amqp").pipe(
  Command.withDescription("The RabbitMQ event bus."),
  Command.withSubcommands([amqpInit])
)

const jobwatch = Command.make("jobwatch").pipe(
  Command.withDescription("Job tracking and notifications on PostgreSQL."),
  Command.withSubcommands([serve, migrate, token, purge, amqp, ...remoteCommands, worker])
)

const run = Command.run(jobwatch, { name: "jobwatch", version })

/** Help and errors without colours on a stream that is not a terminal (a pipe, a file, a CI log), or with NO_COLOR. */
const plain = (stream: NodeJS.WriteStream) => !stream.isTTY || (process.env["NO_COLOR"] ?? "") !== ""
// eslint-disable-next-line no-control-regex
const strip = (args: ReadonlyArray<unknown>) => args.map((arg) => (typeof arg === "string" ? arg.replace(/\u001b\[[0-9;]*m/g, "") : arg))
const withPlainText = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Console.consoleWith((console) =>
    Console.withConsole(effect, {
      ...console,
      log: (...args) => console.log(...(plain(process.stdout) ? strip(args) : args)),
      error: (...args) => console.error(...(plain(process.stderr) ? strip(args) : args))
    }))

const main = run(process.argv).pipe(
  withPlainText,
  Effect.catchAllCause((cause) =>
    Effect.sync(() => {
      const failure = Cause.failureOption(cause)
      // @effect/cli has printed the usage of a command line it could not read
      if (Option.isSome(failure) && ValidationError.isValidationError(failure.value)) {
        process.exitCode = 2
        return
      }
      const usage = Option.isSome(failure) && (failure.value instanceof UsageError || failure.value instanceof RemoteUsageError)
      process.stderr.write(`jobwatch: ${oneLine(Cause.squash(cause))}\n`)
      process.exitCode = usage ? 2 : 1
    })
  ),
  Effect.provide(NodeContext.layer)
)

// `serve` is the service itself, with its own signal handling and shutdown (npm start's): this runtime stays out of
// its way (its SIGTERM would end the process before the service drained)
if (process.argv[2] === "serve" && process.argv.length === 3) await besides("./main.js")
else NodeRuntime.runMain(main, { disableErrorReporting: true })
