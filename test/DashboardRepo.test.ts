import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { JobWatchConfig } from "../src/Config.js"
import { DashboardRepo } from "../src/Dashboard/DashboardRepo.js"
import type { DashboardOverview, QueueOverview } from "../src/Dashboard/DashboardRepo.js"
import type { JobId } from "../src/Domain/JobId.js"
import type { JobStatus } from "../src/Domain/JobStatus.js"
import { Jobs } from "../src/Jobs.js"
import { Webhooks } from "../src/Webhooks.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import { receiver } from "./support/receiver.js"
import { eventually, testLayer } from "./support/workers.js"

const config = {
  webhookAllowPrivate: true,
  webhookTimeout: "2 seconds",
  webhookRetrySchedule: ["100 millis", "100 millis", "100 millis"]
} as const
const TestLayer = DashboardRepo.Default.pipe(Layer.provideMerge(testLayer(config)))

let counter = 0
/** A name no other test of this file uses (owners, worker ids): each test reads only what it made. */
const unique = (prefix: string) => `${prefix}-${process.pid}-${++counter}`

/** Runs `text` on the test's schema (`$schema` stands for it); answers the rows. */
const exec = <A extends object = Record<string, unknown>>(text: string, params: ReadonlyArray<unknown> = []) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { schema } = yield* JobWatchConfig
    return yield* sql.unsafe<A>(text.replaceAll("$schema", `"${schema}"`), params).pipe(Effect.orDie)
  })

/** Sets `column` of job `id` to `expression` (SQL, `now()`-relative); answers the value stored. */
const setTime = (id: JobId, column: string, expression: string) =>
  Effect.map(
    exec<{ at: Date }>(`UPDATE $schema.jobs SET ${column} = ${expression} WHERE id = $1 RETURNING ${column} AS at`, [id]),
    (rows) => rows[0]!.at
  )

/**
 * Enqueues a job of `owner` in `queue` and drives it into `status` through the services. Claims take the newest job
 * (the highest priority so far), so a queue may hold other pending jobs; `worker` claims it.
 */
const jobIn = (status: JobStatus, options: { readonly owner: string; readonly queue: string; readonly worker?: string }) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const workers = yield* Workers
    const worker = options.worker ?? `w-${options.queue}`
    const claims = ["claimed", "running", "completed", "failed"].includes(status)
    const { id } = yield* jobs.enqueue({
      name: `in-${status}`,
      queue: options.queue,
      owner: options.owner,
      priority: claims ? 1_000_000 + ++counter : 0,
      ...(status === "scheduled" ? { delay: "1 hour" } : {})
    })
    if (claims) {
      const claimed = yield* workers.claim(worker, { queues: [options.queue], start: status !== "claimed" })
      assert.deepStrictEqual(claimed.map((job) => job.id), [id])
    }
    if (status === "completed") yield* workers.complete(id, { workerId: worker, result: { ok: true } })
    if (status === "failed") yield* workers.fail(id, { workerId: worker, code: "bad", error: "it broke", retryable: false })
    if (status === "canceled") yield* jobs.cancel(id)
    if (status === "deleted") yield* jobs.delete(id)
    assert.strictEqual((yield* jobs.get(id)).status, status)
    return id
  })

const zero: Record<JobStatus, number> = {
  scheduled: 0, pending: 0, claimed: 0, running: 0, completed: 0, failed: 0, canceled: 0, deleted: 0
}
const countsOf = (counts: Partial<Record<JobStatus, number>>) => ({ ...zero, ...counts })
const queueOf = (overview: DashboardOverview, queue: string): QueueOverview => {
  const found = overview.queues.find((q) => q.queue === queue)
  assert.isDefined(found, `queue ${queue} in the overview`)
  return found!
}
/** The queue names, checked to be in order (names that sort alike in every collation). */
const byName = (overview: DashboardOverview) => {
  const names = overview.queues.map((q) => q.queue)
  assert.deepStrictEqual(names, [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), "queues by name")
  return names
}

layer(TestLayer, { excludeTestServices: true, timeout: 60_000 })("DashboardRepo", (it) => {
  it.effect("overview: every status counted per queue, zero-filled, the oldest due pending job; an owner sees only its jobs", () =>
    Effect.gen(function*() {
      const repo = yield* DashboardRepo
      const alice = unique("alice")
      const bob = unique("bob")
      const shared = uniqueQueue("dash-shared")
      const bobs = uniqueQueue("dash-bob")
      const alices = new Map<JobStatus, JobId>()
      const statuses = ["scheduled", "pending", "pending", "claimed", "running", "completed", "failed", "canceled", "deleted"] as const
      for (const status of statuses) {
        alices.set(status, yield* jobIn(status, { owner: alice, queue: shared }))
      }
      const bobPending = [
        yield* jobIn("pending", { owner: bob, queue: shared }),
        yield* jobIn("pending", { owner: bob, queue: shared }),
        yield* jobIn("pending", { owner: bob, queue: shared })
      ]
      yield* jobIn("completed", { owner: bob, queue: bobs })
      // alice's oldest pending job became due 10 minutes ago
      const [alicePending] = yield* exec<{ id: JobId }>(
        `SELECT id FROM $schema.jobs WHERE owner = $1 AND status = 'pending' ORDER BY id LIMIT 1`,
        [alice]
      )
      const aliceOldest = yield* setTime(alicePending!.id, "scheduled_at", "now() - interval '10 minutes'")
      // jobs in other statuses due earlier still are not pending
      yield* setTime(alices.get("claimed")!, "scheduled_at", "now() - interval '1 hour'")
      yield* setTime(alices.get("canceled")!, "scheduled_at", "now() - interval '1 hour'")
      const [bobOldest] = yield* exec<{ at: Date }>(
        `SELECT min(scheduled_at) AS at FROM $schema.jobs WHERE id = ANY($1::uuid[])`,
        [bobPending]
      )

      const forAlice = yield* repo.overview(alice)
      assert.deepStrictEqual(byName(forAlice), [shared])
      assert.strictEqual(forAlice.totalQueues, 1)
      assert.deepStrictEqual(
        queueOf(forAlice, shared).counts,
        countsOf({ scheduled: 1, pending: 2, claimed: 1, running: 1, completed: 1, failed: 1, canceled: 1, deleted: 1 })
      )
      assert.strictEqual(queueOf(forAlice, shared).oldestPendingAt?.getTime(), aliceOldest.getTime())

      const forBob = yield* repo.overview(bob)
      assert.deepStrictEqual(byName(forBob), [bobs, shared].sort())
      assert.deepStrictEqual(queueOf(forBob, shared).counts, countsOf({ pending: 3 }))
      assert.strictEqual(queueOf(forBob, shared).oldestPendingAt?.getTime(), bobOldest!.at.getTime())
      assert.deepStrictEqual(queueOf(forBob, bobs).counts, countsOf({ completed: 1 }))
      assert.isNull(queueOf(forBob, bobs).oldestPendingAt)
      // nothing completed in bob's part of the shared queue: no run times there
      assert.isNull(queueOf(forBob, shared).p50RunSeconds)
      assert.isNull(queueOf(forBob, shared).p95RunSeconds)
      assert.isNotNull(queueOf(forBob, bobs).p50RunSeconds)

      // an unknown owner: nothing at all, and still 60 empty minutes
      const nobody = yield* repo.overview(unique("nobody"))
      assert.deepStrictEqual([nobody.queues, nobody.totalQueues], [[], 0])
      assert.lengthOf(nobody.perMinute, 60)
      assert.isTrue(nobody.perMinute.every((m) => m.completed === 0 && m.failed === 0))

      const all = yield* repo.overview(undefined)
      // by name (other tests' queues too, in the database's collation: only the order of these two is sure)
      const names = all.queues.map((q) => q.queue)
      assert.isBelow(names.indexOf(bobs), names.indexOf(shared))
      assert.isAtLeast(all.totalQueues, 2)
      assert.deepStrictEqual(
        queueOf(all, shared).counts,
        countsOf({ scheduled: 1, pending: 5, claimed: 1, running: 1, completed: 1, failed: 1, canceled: 1, deleted: 1 })
      )
      assert.strictEqual(queueOf(all, shared).oldestPendingAt?.getTime(), aliceOldest.getTime())
      // the database's clock
      const [db] = yield* exec<{ now: Date }>("SELECT now() AS now")
      assert.isAtMost(Math.abs(db!.now.getTime() - all.now.getTime()), 5_000)
    }))

  it.effect("overview: past 200 queues, the busiest 200 (most unfinished, then most jobs, then by name), listed by name", () =>
    Effect.gen(function*() {
      const repo = yield* DashboardRepo
      const jobs = yield* Jobs
      const ivan = unique("ivan")
      const prefix = uniqueQueue("dash-many")
      const single = Array.from({ length: 200 }, (_, i) => `${prefix}-${String(i).padStart(3, "0")}`)
      yield* jobs.enqueueBatch(single.map((queue) => ({ name: "one", queue, owner: ivan })))
      // the busiest sorts last by name; a queue of finished jobs only is the least busy
      const busy = `${prefix}-zzz`
      for (let i = 0; i < 3; i++) yield* jobIn("pending", { owner: ivan, queue: busy })
      const finished = `${prefix}-aaa`
      yield* jobIn("completed", { owner: ivan, queue: finished })
      yield* jobIn("canceled", { owner: ivan, queue: finished })

      const overview = yield* repo.overview(ivan)
      assert.strictEqual(overview.totalQueues, 202)
      // of the 200 with one pending job each, the last by name is left out
      assert.deepStrictEqual(byName(overview), [...single.slice(0, 199), busy])
      assert.deepStrictEqual(queueOf(overview, busy).counts, countsOf({ pending: 3 }))
    }))

  it.effect("overview: p50 and p95 run seconds of the last hour's completed jobs (a job never started: from its claim)", () =>
    Effect.gen(function*() {
      const repo = yield* DashboardRepo
      const carol = unique("carol")
      const runs = uniqueQueue("dash-runs")
      const unstarted = uniqueQueue("dash-unstarted")
      for (const seconds of [4, 1, 5, 3, 2]) {
        const id = yield* jobIn("completed", { owner: carol, queue: runs })
        yield* setTime(id, "started_at", `finished_at - interval '${seconds} seconds'`)
      }
      // neither a failure nor a job completed two hours ago counts (nor is it in the terminal counts)
      const failed = yield* jobIn("failed", { owner: carol, queue: runs })
      yield* setTime(failed, "started_at", "finished_at - interval '100 seconds'")
      const old = yield* jobIn("completed", { owner: carol, queue: runs })
      yield* setTime(old, "finished_at", "now() - interval '2 hours'")
      yield* setTime(old, "started_at", "finished_at - interval '50 seconds'")
      // claimed, then completed without a start: its run is from the claim
      const claimedOnly = yield* jobIn("claimed", { owner: carol, queue: unstarted })
      yield* (yield* Workers).complete(claimedOnly, { workerId: `w-${unstarted}`, result: null })
      yield* setTime(claimedOnly, "claimed_at", "finished_at - interval '7 seconds'")
      const [row] = yield* exec<{ startedAt: Date | null }>(
        `SELECT started_at AS "startedAt" FROM $schema.jobs WHERE id = $1`,
        [claimedOnly]
      )
      assert.isNull(row!.startedAt)

      const overview = yield* repo.overview(carol)
      const q = queueOf(overview, runs)
      assert.deepStrictEqual(q.counts, countsOf({ completed: 5, failed: 1 }))
      assert.closeTo(q.p50RunSeconds!, 3, 1e-9)
      // percentile_cont: 95% of the way from the first to the fifth is 80% from 4 to 5
      assert.closeTo(q.p95RunSeconds!, 4.8, 1e-9)
      assert.closeTo(queueOf(overview, unstarted).p50RunSeconds!, 7, 1e-9)
      assert.closeTo(queueOf(overview, unstarted).p95RunSeconds!, 7, 1e-9)
    }))

  it.effect("overview: perMinute is the last hour's 60 minutes to the current one, completions and failures by " +
    "finished_at, zero elsewhere", () =>
    Effect.gen(function*() {
      const repo = yield* DashboardRepo
      const dave = unique("dave")
      const queue = uniqueQueue("dash-minutes")
      const finished = [
        { status: "completed", at: "now() - interval '5 minutes'" },
        { status: "completed", at: "now() - interval '5 minutes'" },
        { status: "failed", at: "now() - interval '5 minutes'" },
        { status: "failed", at: "now() - interval '30 minutes'" },
        { status: "completed", at: "now()" },
        // outside the hour
        { status: "completed", at: "now() - interval '2 hours'" },
        { status: "failed", at: "now() - interval '61 minutes'" },
        // finished, but neither completed nor failed
        { status: "canceled", at: "now() - interval '5 minutes'" }
      ] as const
      const expected = new Map<number, { completed: number; failed: number }>()
      for (const { status, at } of finished) {
        const id = yield* jobIn(status, { owner: dave, queue })
        const stored = yield* setTime(id, "finished_at", at)
        const minute = Math.floor(stored.getTime() / 60_000) * 60_000
        const entry = expected.get(minute) ?? { completed: 0, failed: 0 }
        if (status === "completed") entry.completed++
        if (status === "failed") entry.failed++
        expected.set(minute, entry)
      }

      const overview = yield* repo.overview(dave)
      const minutes = overview.perMinute
      assert.lengthOf(minutes, 60)
      assert.strictEqual(minutes[59]!.minute.getTime(), Math.floor(overview.now.getTime() / 60_000) * 60_000)
      minutes.forEach((m, i) => assert.strictEqual(m.minute.getTime(), minutes[59]!.minute.getTime() - (59 - i) * 60_000))
      assert.strictEqual(overview.terminalSince.getTime(), minutes[0]!.minute.getTime())
      for (const m of minutes) {
        assert.deepStrictEqual(
          { completed: m.completed, failed: m.failed },
          expected.get(m.minute.getTime()) ?? { completed: 0, failed: 0 },
          m.minute.toISOString()
        )
      }
      const total = (key: "completed" | "failed") => minutes.reduce((sum, m) => sum + m[key], 0)
      assert.deepStrictEqual([total("completed"), total("failed")], [3, 2])
      // the terminal counts cover the same hour
      assert.deepStrictEqual(queueOf(overview, queue).counts, countsOf({ completed: 3, failed: 2, canceled: 1 }))
    }))

  it.effect("workers: alive ones first, then by last seen; held jobs with their leases; an owner sees its workers and " +
    "those holding its jobs, with its own jobs only", () =>
    Effect.gen(function*() {
      const repo = yield* DashboardRepo
      const workers = yield* Workers
      const erin = unique("erin")
      const fred = unique("fred")
      const box = `${erin}:box`
      const old = `${erin}:old`
      const notErins = `${erin}x`
      const shared = unique("shared-worker")
      const fredBox = `${fred}:box`
      const idle = uniqueQueue("dash-idle")
      const job1 = yield* jobIn("claimed", { owner: erin, queue: uniqueQueue("dash-w1"), worker: box })
      const q2 = uniqueQueue("dash-w2")
      const job2 = yield* jobIn("running", { owner: erin, queue: q2, worker: shared })
      const job3 = yield* jobIn("running", { owner: fred, queue: q2, worker: shared })
      yield* workers.progress(job2, { percent: 40, force: true }, { workerId: shared })
      for (const id of [erin, old, notErins, fredBox]) {
        const claimed = yield* workers.claim(id, { queues: [idle], names: ["only-this"], heartbeatInterval: "10 seconds" })
        assert.deepStrictEqual(claimed, [])
      }
      // last seen in a known order; erin:old silent for an hour (dead: the reaper would forget it)
      const seen: ReadonlyArray<readonly [string, string]> = [
        [box, "1 second"], [erin, "2 seconds"], [shared, "3 seconds"], [notErins, "4 seconds"], [fredBox, "5 seconds"],
        [old, "1 hour"]
      ]
      for (const [id, ago] of seen) {
        yield* exec(`UPDATE $schema.workers SET last_seen_at = now() - interval '${ago}' WHERE id = $1`, [id])
      }
      const leases = new Map((yield* exec<{ id: string; lease: Date; startedAt: Date | null }>(
        `SELECT id, lease_expires_at AS lease, started_at AS "startedAt" FROM $schema.jobs WHERE id = ANY($1::uuid[])`,
        [[job1, job2, job3]]
      )).map((r) => [r.id, r]))

      const forErin = yield* repo.workers(erin)
      assert.deepStrictEqual(forErin.map((w) => w.id), [box, erin, shared, old])
      assert.deepStrictEqual(forErin.map((w) => w.alive), [true, true, true, false])
      const [boxRow, erinRow, sharedRow, oldRow] = forErin
      assert.deepStrictEqual(boxRow!.held, [{
        id: job1,
        name: "in-claimed",
        queue: boxRow!.queues[0]!,
        status: "claimed",
        leaseExpiresAt: leases.get(job1)!.lease,
        startedAt: null,
        percent: 0
      }])
      assert.strictEqual(boxRow!.heldCount, 1)
      assert.isNull(boxRow!.names)
      assert.deepStrictEqual([erinRow!.held, erinRow!.heldCount], [[], 0])
      assert.deepStrictEqual(
        [erinRow!.queues, erinRow!.names, erinRow!.heartbeatIntervalMs, erinRow!.leaseMs],
        [[idle], ["only-this"], 10_000, 15_000]
      )
      assert.instanceOf(erinRow!.registeredAt, Date)
      // the shared worker holds a job of each: erin sees hers only
      assert.deepStrictEqual(sharedRow!.held, [{
        id: job2,
        name: "in-running",
        queue: q2,
        status: "running",
        leaseExpiresAt: leases.get(job2)!.lease,
        startedAt: leases.get(job2)!.startedAt,
        percent: 40
      }])
      assert.strictEqual(sharedRow!.heldCount, 1)
      assert.deepStrictEqual([oldRow!.alive, oldRow!.held], [false, []])
      assert.isAbove(sharedRow!.lastSeenAt.getTime(), oldRow!.lastSeenAt.getTime())

      const forFred = yield* repo.workers(fred)
      assert.deepStrictEqual(forFred.map((w) => w.id), [shared, fredBox])
      assert.deepStrictEqual(forFred[0]!.held.map((j) => j.id), [job3])

      const all = yield* repo.workers(undefined)
      const ids = all.map((w) => w.id)
      for (const id of [box, erin, shared, notErins, fredBox, old]) assert.include(ids, id)
      const everyone = all.find((w) => w.id === shared)!
      assert.deepStrictEqual([everyone.held.map((j) => j.id), everyone.heldCount], [[job2, job3], 2])
      // alive first, then the most recently seen
      for (let i = 1; i < all.length; i++) {
        assert.isTrue(all[i - 1]!.alive || !all[i]!.alive, "alive before dead")
        assert.isAtLeast(all[i - 1]!.lastSeenAt.getTime(), all[i]!.lastSeenAt.getTime())
      }
      assert.isFalse(all.find((w) => w.id === old)!.alive)
    }))

  it.scoped("jobDeliveries: a job's webhook deliveries newest first with their attempts; another owner gets none", () =>
    Effect.gen(function*() {
      const repo = yield* DashboardRepo
      const hooks = yield* Webhooks
      const jobs = yield* Jobs
      const workers = yield* Workers
      const gina = unique("gina")
      const endpointTarget = yield* receiver()
      // the job's own callback fails once (HTTP 500), then is answered
      const callback = yield* receiver([{ status: 500 }, { status: 200 }])
      const endpoint = yield* hooks.create(gina, { url: endpointTarget.url, eventTypes: ["completed"] })
      const queue = uniqueQueue("dash-hooks")
      const { id } = yield* jobs.enqueue({ name: "hooked", queue, owner: gina, webhookUrl: callback.url })
      yield* workers.claim(`w-${queue}`, { queues: [queue], start: true })
      yield* workers.complete(id, { workerId: `w-${queue}`, result: { ok: true } })
      const version = (yield* jobs.get(id)).version

      const deliveries = yield* eventually(
        repo.jobDeliveries(id, gina),
        (rows) => rows.length === 2 && rows.every((d) => d.status !== "pending")
      )
      assert.deepStrictEqual(deliveries.map((d) => d.id), deliveries.map((d) => d.id).sort().reverse(), "newest first")
      const toEndpoint = deliveries.find((d) => d.endpointId !== null)!
      const own = deliveries.find((d) => d.endpointId === null)!
      assert.deepInclude(toEndpoint, {
        endpointId: endpoint.id,
        url: endpointTarget.url,
        type: "job.completed",
        version,
        status: "succeeded",
        attempts: 1,
        lastStatus: 200,
        lastError: null
      })
      assert.deepStrictEqual(toEndpoint.log.map((l) => [l.attempt, l.status, l.error]), [[1, 200, null]])
      assert.deepInclude(own, {
        url: callback.url,
        type: "job.completed",
        version,
        status: "succeeded",
        attempts: 2,
        lastStatus: 200
      })
      assert.deepStrictEqual(own.log.map((l) => [l.attempt, l.status]), [[1, 500], [2, 200]])
      for (const d of deliveries) {
        assert.isNotNull(d.finishedAt)
        assert.isAtMost(d.createdAt.getTime(), d.finishedAt!.getTime())
        assert.instanceOf(d.nextAttemptAt, Date)
        for (const l of d.log) {
          assert.isAtLeast(l.durationMs, 0)
          assert.isAtLeast(l.startedAt.getTime(), d.createdAt.getTime() - 1000)
        }
      }

      assert.deepStrictEqual(yield* repo.jobDeliveries(id, undefined), deliveries)
      assert.deepStrictEqual(yield* repo.jobDeliveries(id, unique("henry")), [])
      // a job without deliveries, and an unknown one
      const quiet = yield* jobIn("pending", { owner: gina, queue })
      assert.deepStrictEqual(yield* repo.jobDeliveries(quiet, gina), [])
      assert.deepStrictEqual(yield* repo.jobDeliveries("01900000-0000-7000-8000-000000000000", undefined), [])
    }))
})
