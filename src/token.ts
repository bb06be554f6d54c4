// `npm run token -- --sub alice [--role worker] [--role admin] [--ttl 1h]`: prints a bearer token signed with
// JOBWATCH_JWT_SECRET, or with the secret `npm start` keeps in the data directory (created if there is none yet).
import { Duration, Effect, Option, Schema } from "effect"
import { parseArgs } from "node:util"
import * as Auth from "./Auth.js"
import { JobWatchConfig, parseDuration } from "./Config.js"
import { Role } from "./Domain/Auth.js"

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
    catch: (error) => new Error(`${error instanceof Error ? error.message : String(error)}\n${usage}`)
  })
  const sub = values.sub?.trim()
  if (sub === undefined || sub === "") return yield* Effect.fail(new Error(`--sub is required\n${usage}`))
  const roles = values.role ?? []
  const bad = roles.find((role) => !Schema.is(Role)(role))
  if (bad !== undefined) return yield* Effect.fail(new Error(`unknown role ${bad}: worker or admin\n${usage}`))
  const ttl = parseDuration(values.ttl)
  if (Option.isNone(ttl) || Duration.toSeconds(ttl.value) < 1) {
    return yield* Effect.fail(new Error(`--ttl must be a duration such as 15m, 1h or 7d\n${usage}`))
  }
  const config = yield* JobWatchConfig
  const configured = process.env.JOBWATCH_JWT_SECRET
  const secret = configured !== undefined && configured.trim() !== ""
    ? new TextEncoder().encode(configured.trim())
    : yield* Auth.ensureSecret(config.dataDir)
  const token = yield* Auth.mint(secret, { sub, roles: roles as ReadonlyArray<Role>, ttlSeconds: Duration.toSeconds(ttl.value) })
  process.stdout.write(`${token}\n`)
}).pipe(Effect.provide(JobWatchConfig.layerConfig))

Effect.runPromise(program).catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(2)
})
