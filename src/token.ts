// `npm run token -- --sub alice [--role worker] [--role admin] [--ttl 1h]`: prints a bearer token signed with
// JOBWATCH_JWT_SECRET, or with the secret `npm start` keeps in the data directory (created if there is none yet).
// It reads the JWT settings as `npm start` does, refuses what `npm start` refuses (one line, exit 1), and mints
// tokens the service accepts (its audience and issuer; no longer than JOBWATCH_JWT_MAX_TTL).
import { Cause, Data, Duration, Effect, Option, Redacted, Schema } from "effect"
import { parseArgs } from "node:util"
import * as Auth from "./Auth.js"
import { JobWatchConfig, parseDuration } from "./Config.js"
import { Role } from "./Domain/Auth.js"

const usage = "usage: npm run token -- --sub <user> [--role worker|admin]... [--ttl 1h]"

/** A command line this program cannot follow (exit 2). */
class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

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
  const sub = values.sub?.trim()
  if (sub === undefined || sub === "") return yield* new UsageError({ message: `--sub is required\n${usage}` })
  const roles: Array<Role> = []
  for (const role of values.role ?? []) {
    if (!Schema.is(Role)(role)) return yield* new UsageError({ message: `unknown role ${role}: worker or admin\n${usage}` })
    roles.push(role)
  }
  const ttl = parseDuration(values.ttl)
  if (Option.isNone(ttl) || Duration.toSeconds(ttl.value) < 1) {
    return yield* new UsageError({ message: `--ttl must be a duration such as 15m, 1h or 7d\n${usage}` })
  }
  const keys = yield* Auth.JwtKeysTag
  if (keys.maxTtl !== undefined && Duration.greaterThan(ttl.value, keys.maxTtl)) {
    return yield* new UsageError({
      message: `--ttl ${values.ttl} is longer than JOBWATCH_JWT_MAX_TTL (${Duration.format(keys.maxTtl)}): the service would refuse the token`
    })
  }
  if (Option.isNone(keys.secret)) {
    return yield* new Auth.JwtConfigError({
      variable: "JOBWATCH_JWT_SECRET",
      message: "npm run token signs with JOBWATCH_JWT_SECRET: with only JOBWATCH_JWT_PUBLIC_KEY or JOBWATCH_JWKS_URL set, " +
        "tokens come from the identity provider"
    })
  }
  const token = yield* Auth.mintFor(keys, Redacted.value(keys.secret.value), {
    sub,
    roles,
    ttlSeconds: Duration.toSeconds(ttl.value)
  })
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
