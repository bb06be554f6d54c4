import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { ServerLive } from "./Http.js"
import * as JobWatch from "./JobWatch.js"
import { Listener } from "./Listener.js"

const MainLive = ServerLive.pipe(Layer.provideMerge(JobWatch.layerConfig))

// Runs until SIGTERM/SIGINT; with `shutdownOnListenerFailure`, exits non-zero when the LISTEN connection
// stays down too long, for a supervisor to restart the process.
const program = Effect.flatMap(Listener, (listener) => listener.awaitFailure).pipe(Effect.provide(MainLive))

NodeRuntime.runMain(program)
