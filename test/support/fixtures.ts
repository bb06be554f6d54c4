import { Effect } from "effect"
import * as Net from "node:net"
import type { JobRef } from "../../src/Domain/Job.js"
import type { JobStatus } from "../../src/Domain/JobStatus.js"
import { Jobs } from "../../src/Jobs.js"
import { Repos } from "./repos.js"
import { Workers } from "../../src/Workers.js"

let counter = 0
/** A queue name no other test uses, so claims only see this test's jobs. */
export const uniqueQueue = (prefix = "q") => `${prefix}-${process.pid}-${Date.now().toString(36)}-${++counter}`

/** Enqueues a job and drives it, through allowed transitions, into `status`. */
export const jobIn = (status: JobStatus, options: { readonly queue?: string } = {}) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const repo = yield* Repos
    const queue = options.queue ?? uniqueQueue()
    const ref: JobRef = yield* jobs.enqueue({
      name: `job-in-${status}`,
      queue,
      // a claim below must take this job even when the queue holds older pending ones
      priority: ["claimed", "running", "completed", "failed"].includes(status) ? 1_000_000 + ++counter : 0,
      ...(status === "scheduled" ? { delay: "1 hour" } : {})
    })
    const id = ref.id
    const claim = () => repo.claim({ workerId: "w1", queues: [queue], limit: 1, leaseMs: 60_000 })
    switch (status) {
      case "scheduled":
      case "pending":
        break
      case "claimed":
        yield* claim()
        break
      case "running":
        yield* claim()
        yield* repo.start(id)
        break
      case "completed":
        yield* claim()
        yield* repo.start(id)
        yield* repo.complete(id, { resultJson: JSON.stringify({ ok: true }) })
        break
      case "failed":
        yield* claim()
        yield* repo.fail(id, { code: "boom", error: "it broke" })
        break
      case "canceled":
        yield* repo.cancel(id)
        break
      case "deleted":
        yield* repo.remove(id)
        break
    }
    const info = yield* repo.get(id)
    if (info.status !== status) return yield* Effect.die(`expected ${status}, got ${info.status}`)
    return info
  })

/** Runs a job of `owner` through claim, start and completion (or failure), on a queue of its own; answers its id. */
export const runJob = (owner: string, outcome: "completed" | "failed" = "completed") =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const workers = yield* Workers
    const queue = uniqueQueue("hook")
    const ref = yield* jobs.enqueue({ name: "hooked", queue, owner })
    yield* workers.claim(`w-${queue}`, { queues: [queue], start: true })
    if (outcome === "completed") yield* workers.complete(ref.id, { workerId: `w-${queue}`, result: { ok: true } })
    else yield* workers.fail(ref.id, { workerId: `w-${queue}`, code: "bad", error: "it broke", retryable: false })
    return ref.id
  })

/** A loopback port nothing listens on (connections to it are refused). */
export const closedPort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const server = Net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })
)
