import { Effect, Layer } from "effect"
import { JobWatchConfig } from "../Config.js"
import { Workers } from "../Workers.js"
import type { WorkerBackendShape } from "./WorkerBackend.js"
import { WorkerBackend } from "./WorkerBackend.js"

// `Worker`: the loop and its port (`WorkerLoop.ts`, browser-safe), and the in-process backend, which needs the
// server's `Workers` service.

export * from "./WorkerLoop.js"

/** `WorkerBackend` on this process's `Workers` service. */
export const local: Layer.Layer<WorkerBackend, never, Workers | JobWatchConfig> = Layer.effect(
  WorkerBackend,
  Effect.zipWith(Workers, JobWatchConfig, (workers, config): WorkerBackendShape => ({
    claim: workers.claim,
    heartbeat: workers.heartbeat,
    progress: workers.progress,
    complete: workers.complete,
    completeMany: workers.completeMany,
    completeAndClaim: workers.completeAndClaim,
    fail: workers.fail,
    canceled: workers.canceled,
    release: workers.release,
    onCancelRequested: workers.onCancelRequested,
    retryMaxBackoff: config.retryMaxBackoff
  }))
)

