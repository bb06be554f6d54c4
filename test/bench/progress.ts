// `npm run bench -- progress`: 100 claimed jobs, each reporting progress 1,000 times per second for 10 s
// through the ProgressReporter with its default 2 s window; then the database writes (job.progress events) per job
// per second, counted after the last coalesced reports landed.
import { SqlClient } from "@effect/sql"
import { Duration, Effect } from "effect"
import { JobWatchConfig } from "../../src/Config.js"
import type { JobId } from "../../src/Domain/JobId.js"
import { Jobs } from "../../src/Jobs.js"
import { ProgressReporter } from "../../src/Workers/ProgressReporter.js"
import { Workers } from "../../src/Workers.js"

const jobCount = 100
const seconds = 10
const perSecond = 1000

export const progress = (_url: string) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const workers = yield* Workers
    const reporter = yield* ProgressReporter
    const config = yield* JobWatchConfig
    const sql = yield* SqlClient.SqlClient
    const queue = "bench-progress"
    yield* jobs.enqueueBatch(Array.from({ length: jobCount }, (_, i) => ({ name: `p${i}`, queue })))
    const claimed = yield* workers.claim("bench-worker", { queues: [queue], limit: jobCount })
    const ids = claimed.map((job) => job.id)
    let calls = 0
    const started = performance.now()
    const end = started + seconds * 1000
    // each job: every 10 ms, as many reports as are due at 1,000 per second since it started (timers are coarse;
    // the achieved rate is printed)
    const report = (id: JobId) =>
      Effect.gen(function*() {
        let percent = 0
        let sent = 0
        while (performance.now() < end) {
          const due = Math.floor((performance.now() - started) * perSecond / 1000)
          for (; sent < due; sent++) {
            percent = Math.min(100, percent + 100 / (seconds * perSecond))
            yield* reporter.progress(id, { percent, step: "working" })
            calls++
          }
          yield* Effect.sleep(Duration.millis(10))
        }
      })
    yield* Effect.forEach(ids, report, { concurrency: "unbounded", discard: true })
    const reporting = (performance.now() - started) / 1000
    // the last coalesced report of each job lands at the end of its window
    yield* Effect.sleep(Duration.sum(config.progressThrottle, Duration.millis(500)))
    const [row] = yield* sql<{ writes: number }>`
      SELECT count(*)::int AS writes FROM ${sql(`${config.schema}.job_events`)}
      WHERE job_id = ANY(${ids}::uuid[]) AND type = 'job.progress'`
    const writes = row?.writes ?? 0
    const perJobPerSecond = writes / jobCount / seconds
    const steady = (writes - jobCount) / jobCount / seconds
    console.log(`${jobCount} jobs reporting for ${reporting.toFixed(1)} s: ${calls} reports (${(calls / reporting / jobCount).toFixed(0)} per job per second), window ${Duration.format(config.progressThrottle)}`)
    console.log(`  database writes: ${writes} = ${perJobPerSecond.toFixed(2)} per job per second, all included (the first report of each job is written at once, then one per window, and the last lands at its window's end)`)
    console.log(`  without the first write of each job: ${steady.toFixed(2)} per job per second; target ≤ 0.5: ${steady <= 0.5 ? "met" : "NOT met"}${perJobPerSecond <= 0.5 ? "" : ` (all included: ${perJobPerSecond.toFixed(2)})`}`)
  })
