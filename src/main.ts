import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { ServerLive } from "./Http.js"
import * as JobWatch from "./JobWatch.js"

const MainLive = ServerLive.pipe(Layer.provide(JobWatch.layerConfig))

NodeRuntime.runMain(Layer.launch(MainLive))
