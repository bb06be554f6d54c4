import { assert, describe, it } from "@effect/vitest"
import type { Context } from "effect"
import { Effect, Layer } from "effect"
import { CompletionWatcher } from "../src/CompletionWatcher.js"
import { Listener } from "../src/EventLog/Listener.js"
import * as JobWatch from "../src/JobWatch.js"
import { Jobs } from "../src/Jobs.js"
import { EventStream } from "../src/Streams/EventStream.js"
import { WebhookDeliverer } from "../src/Webhooks/WebhookDeliverer.js"
import { Webhooks } from "../src/Webhooks.js"
import { ProgressReporter } from "../src/Workers/ProgressReporter.js"
import { Reaper } from "../src/Workers/Reaper.js"
import * as Worker from "../src/Workers/Worker.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import * as TestDb from "./support/TestDb.js"

/** Whether the context holds the service of `tag`. */
const has = <R>(context: Context.Context<R>, tag: { readonly key: string }) => context.unsafeMap.has(tag.key)

describe("layers by role", () => {
  it.scoped("a worker-only layer runs a job that a producer-only layer enqueued and awaits; neither starts the rest", () =>
    Effect.gen(function*() {
      // two "processes" on one database: each layer built on its own, each running the migrations (the second
      // finds nothing to do)
      const producer = yield* Layer.build(JobWatch.producerLayer)
      const worker = yield* Layer.build(JobWatch.workerLayer())

      for (const tag of [Jobs, CompletionWatcher, EventStream, Listener]) assert.isTrue(has(producer, tag), tag.key)
      for (const tag of [Workers, ProgressReporter, Reaper, WebhookDeliverer, Webhooks, Worker.WorkerBackend]) {
        assert.isFalse(has(producer, tag), `the producer layer holds no ${tag.key}`)
      }
      for (const tag of [Workers, ProgressReporter, Worker.WorkerBackend]) assert.isTrue(has(worker, tag), tag.key)
      for (const tag of [Reaper, WebhookDeliverer, CompletionWatcher, EventStream, Webhooks, Jobs]) {
        assert.isFalse(has(worker, tag), `the worker layer holds no ${tag.key}`)
      }

      const queue = uniqueQueue("roles")
      const ref = yield* Effect.flatMap(Jobs, (jobs) => jobs.enqueue({ name: "double", queue, payload: { n: 21 } }))
        .pipe(Effect.provide(producer))
      yield* Worker.run({
        queues: [queue],
        claimWait: "2 seconds",
        handler: (_job, ctx) => Effect.as(ctx.progress(50), { doubled: 42 })
      }).pipe(Effect.provide(worker))
      const outcome = yield* Effect.flatMap(CompletionWatcher, (watcher) => watcher.waitFor(ref.id)).pipe(
        Effect.provide(producer),
        Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("the job did not complete in 20 s") })
      )
      assert.strictEqual(outcome.status, "completed")
      assert.deepStrictEqual(outcome.result, { doubled: 42 })
    }).pipe(Effect.provide(TestDb.layer({ reaper: false }))), { timeout: 60_000 })

  it.scoped("workerLayer({ reaper: true }) adds the reaper, and only it", () =>
    Effect.gen(function*() {
      const worker = yield* Layer.build(JobWatch.workerLayer({ reaper: true }))
      assert.isTrue(has(worker, Reaper))
      assert.isTrue(has(worker, Workers))
      assert.isFalse(has(worker, WebhookDeliverer))
      assert.isFalse(has(worker, CompletionWatcher))
    }).pipe(Effect.provide(TestDb.layer({ reaper: false }))), { timeout: 60_000 })
})
