// `npm run token -- --sub alice [--role worker] [--role admin] [--ttl 1h]`: prints a bearer token signed with
// JOBWATCH_JWT_SECRET, or with the secret `npm start` keeps in the data directory (created if there is none yet).
// It reads the JWT settings as `npm start` does, refuses what `npm start` refuses (one line, exit 1), and mints
// tokens the service accepts (its audience and issuer; no longer than JOBWATCH_JWT_MAX_TTL).
import { Cause, Effect } from "effect"
import { parseArgs } from "node:util"
import * as Auth from "./Auth.js"
import { mintToken, UsageError } from "./Cli/token.js"
import { JobWatchConfig } from "./Config.js"

const usage = "usage: npm run token -- --sub <user> [--role worker|admin]... [--ttl 1h]"

const program = Effect.gen(function*() {
  const { values } = yield* Effect.try({
    try: () =>
      parseArgs({
        options: {
          sub: { type: "string" },
          role: { type: "string", multiple: true },
          ttl: { type: "string", default: "1h" }
        },
        allowPositionals: false
      }),
    catch: (error) => new UsageError({ message: `${error instanceof Error ? error.message : String(error)}\n${usage}` })
  })
  if (values.sub === undefined) return yield* new UsageError({ message: `--sub is required\n${usage}` })
  const token = yield* mintToken({ sub: values.sub, roles: values.role ?? [], ttl: values.ttl }).pipe(
    Effect.catchTag("UsageError", (error) => new UsageError({ message: `${error.message}\n${usage}` }))
  )
  yield* Effect.sync(() => process.stdout.write(`${token}\n`))
}).pipe(
  Effect.provide(Auth.keysFromEnv),
  Effect.provide(JobWatchConfig.layerConfig),
  Effect.catchAllCause((cause) =>
    Effect.sync(() => {
      const error = Cause.squash(cause)
      const message = error instanceof Error ? error.message : String(error)
      process.stderr.write(`${message}\n`)
      process.exitCode = error instanceof UsageError ? 2 : 1
    })
  )
)

Effect.runFork(program)
