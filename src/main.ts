import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Option, Redacted } from "effect"
import * as Auth from "./Auth.js"
import { JobWatchConfig } from "./Config.js"
import { ServerLive } from "./Http.js"
import * as JobWatch from "./JobWatch.js"
import { Listener } from "./Listener.js"

/**
 * Secure by default: when no key was configured, a secret was generated and kept in the data directory; print an
 * admin token and a worker token (valid 24 hours) to start with. `npm run token` mints more.
 */
const printStarterTokens = Effect.gen(function*() {
  const keys = yield* Auth.JwtKeysTag
  if (!keys.generated || Option.isNone(keys.secret)) return
  const secret = Redacted.value(keys.secret.value)
  const config = yield* JobWatchConfig
  const admin = yield* Auth.mintFor(keys, secret, { sub: "admin", roles: ["admin"], ttlSeconds: 24 * 3600 })
  const worker = yield* Auth.mintFor(keys, secret, { sub: "worker", roles: ["worker"], ttlSeconds: 24 * 3600 })
  yield* Effect.sync(() =>
    process.stdout.write(
      `\nNo JOBWATCH_JWT_SECRET set: tokens are signed with the secret kept in ${Auth.secretPath(config.dataDir)}.\n` +
        `Admin token (24 h):  ${admin}\nWorker token (24 h): ${worker}\n` +
        `More: npm run token -- --sub alice [--role worker] [--ttl 1h]\n\n`
    )
  )
})

const MainLive = ServerLive.pipe(
  Layer.provideMerge(Auth.keysFromEnv),
  Layer.provideMerge(JobWatch.layerConfig)
)

// Runs until SIGTERM/SIGINT; with `shutdownOnListenerFailure`, exits non-zero when the LISTEN connection
// stays down too long, for a supervisor to restart the process.
const program = printStarterTokens.pipe(
  Effect.zipRight(Effect.flatMap(Listener, (listener) => listener.awaitFailure)),
  Effect.provide(MainLive)
)

NodeRuntime.runMain(program)
