// `npm run bench -- webhooks`: a healthy endpoint's delivery latency, from a job's completion call returning to the
// receiver reading its `job.completed`, with the default deliverer (16 slots, 4 per endpoint, 10 s timeout): alone,
// beside 8 endpoints that never answer, and beside 8 that answered once and then stopped answering. In each case
// 200 jobs complete one every 20 ms, all endpoints subscribed; receivers on loopback in this process.
import { Effect } from "effect"
import { Jobs } from "../../src/Jobs.js"
import { Webhooks } from "../../src/Webhooks.js"
import { Workers } from "../../src/Workers.js"
import type { Answer } from "../support/receiver.js"
import { receiver } from "../support/receiver.js"
import { ms, summarize } from "./stats.js"

const jobsPerCase = 200
const everyMs = 20

export const webhooks = (_url: string) =>
  Effect.gen(function*() {
    const hooks = yield* Webhooks
    const jobs = yield* Jobs
    const workers = yield* Workers
    let counter = 0

    /** Enqueues, claims and completes a job of `owner`; answers its id when the completion call returned. */
    const complete = (owner: string) =>
      Effect.gen(function*() {
        const queue = `bench-hooks-${++counter}`
        const ref = yield* jobs.enqueue({ name: "hooked", queue, owner })
        yield* workers.claim(`w-${queue}`, { queues: [queue], start: true })
        yield* workers.complete(ref.id, { workerId: `w-${queue}`, result: { ok: true } })
        return { id: ref.id, at: performance.now() }
      })

    const scenario = (name: string, others: ReadonlyArray<ReadonlyArray<Answer>>) =>
      Effect.scoped(Effect.gen(function*() {
        const owner = `bench-${name.replace(/\W+/g, "-")}`
        const healthy = yield* receiver()
        const rest = yield* Effect.forEach(others, (answers) => receiver(answers))
        const ids: Array<string> = []
        for (const r of [healthy, ...rest]) {
          ids.push((yield* hooks.create(owner, { url: r.url, eventTypes: ["completed"] })).id)
        }
        // gone at the end with their deliveries, so that the next case starts afresh
        yield* Effect.addFinalizer(() =>
          Effect.forEach(ids, (id) => Effect.ignore(hooks.remove(id, owner)), { discard: true })
        )
        // one job first: every endpoint that answers proves it does
        yield* complete(owner)
        yield* healthy.until(1)
        const done = new Map<string, number>()
        for (let i = 0; i < jobsPerCase; i++) {
          const { at, id } = yield* complete(owner)
          done.set(id, at)
          yield* Effect.sleep(`${everyMs} millis`)
        }
        const got = yield* healthy.until(jobsPerCase + 1)
        const latencies = got.slice(1).map((r) => {
          const body = JSON.parse(r.body) as { readonly data: { readonly jobId: string } }
          return r.at - done.get(body.data.jobId)!
        })
        const s = summarize(latencies)
        console.log(
          `${name.padEnd(44)} n=${s.n}  p50 ${ms(s.p50)}  p95 ${ms(s.p95)}  p99 ${ms(s.p99)}  max ${ms(s.max)}`
        )
      }))

    yield* scenario("healthy endpoint alone", [])
    yield* scenario("beside 8 that never answer", Array.from({ length: 8 }, () => ["hang"] as const))
    yield* scenario(
      "beside 8 that answered once, then stopped",
      Array.from({ length: 8 }, () => [{ status: 200 }, "hang"] as const)
    )
  })
