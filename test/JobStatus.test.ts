import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  allowedFrom,
  allStatuses,
  canTransition,
  isActive,
  isFailed,
  isScheduled,
  isSuccessful,
  isTerminal,
  resolveStatus,
  statusAliases,
  transitions
} from "../src/Domain/JobStatus.js"
import { makeJobId } from "../src/Domain/JobId.js"
import { Jobs } from "../src/Jobs.js"
import { Workers } from "../src/Workers.js"
import { jobIn, uniqueQueue } from "./support/fixtures.js"
import { testLayer } from "./support/workers.js"

describe("JobStatus", () => {
  it("has the eight statuses, four of them terminal", () => {
    assert.deepStrictEqual([...allStatuses], [
      "scheduled",
      "pending",
      "claimed",
      "running",
      "completed",
      "failed",
      "canceled",
      "deleted"
    ])
    assert.deepStrictEqual(allStatuses.filter(isTerminal), ["completed", "failed", "canceled", "deleted"])
  })

  it("terminal statuses go nowhere; no status moves to itself", () => {
    for (const status of allStatuses) {
      if (isTerminal(status)) assert.lengthOf(transitions[status], 0)
      assert.isFalse(canTransition(status, status))
    }
  })

  it("every non-terminal status can be canceled, and every status can be reached", () => {
    for (const status of allStatuses) {
      if (!isTerminal(status)) assert.isTrue(canTransition(status, "canceled"), status)
      if (status !== "scheduled" && status !== "pending") assert.isAbove(allowedFrom(status).length, 0, status)
    }
    assert.sameMembers([...allowedFrom("claimed")], ["pending"])
    assert.sameMembers([...allowedFrom("deleted")], ["scheduled", "pending"])
  })

  it("resolves canonical names and aliases, case-insensitively; unknown terms are undefined", () => {
    assert.deepStrictEqual(resolveStatus("running"), ["running"])
    assert.deepStrictEqual(resolveStatus("IN_PROGRESS"), ["claimed", "running"])
    assert.deepStrictEqual(resolveStatus(" Queued "), ["pending"])
    assert.deepStrictEqual(resolveStatus("active"), ["claimed", "running"])
    assert.deepStrictEqual(resolveStatus("cancelled"), ["canceled"])
    assert.isUndefined(resolveStatus("exploded"))
    for (const targets of Object.values(statusAliases)) {
      for (const target of targets) assert.include(allStatuses, target)
    }
  })
})

describe("makeJobId", () => {
  it("makes UUIDv7 ids that strictly increase, also within one millisecond", () => {
    const ids = Array.from({ length: 5000 }, () => makeJobId())
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    for (let i = 1; i < ids.length; i++) assert.isTrue(ids[i - 1]! < ids[i]!, `${ids[i - 1]} < ${ids[i]}`)
    assert.strictEqual(new Set(ids).size, ids.length)
  })
})

describe("the helpers of Kool Queue's JobStatusInfo", () => {
  it("isSuccessful, isFailed, isActive and isScheduled of each status", () => {
    const flags = Object.fromEntries(
      allStatuses.map((s) => [s, [isSuccessful(s), isFailed(s), isActive(s), isScheduled(s)].map(Number).join("")])
    )
    assert.deepStrictEqual(flags, {
      scheduled: "0001",
      pending: "0000",
      claimed: "0010",
      running: "0010",
      completed: "1000",
      failed: "0100",
      canceled: "0000",
      deleted: "0000"
    })
  })

  it.effect("JobInfo carries them and errorMessage; scheduledAt is null for an immediate job, when due otherwise", () =>
    Effect.gen(function*() {
      const jobs = yield* Jobs
      const workers = yield* Workers
      for (const status of allStatuses) {
        const info = yield* jobIn(status)
        assert.deepInclude({ ...info }, {
          status,
          isSuccessful: isSuccessful(status),
          isFailed: isFailed(status),
          isActive: isActive(status),
          isScheduled: isScheduled(status)
        })
        assert.strictEqual(info.errorMessage, status === "failed" ? "it broke" : null)
        assert.strictEqual(info.errorMessage, info.error?.message ?? null)
      }
      const queue = uniqueQueue("scheduled-at")
      const now = yield* jobs.enqueue({ name: "now", queue, idempotencyKey: "k", maxAttempts: 2 })
      assert.isNull(now.scheduledAt)
      assert.isNull((yield* jobs.enqueue({ name: "now", queue, idempotencyKey: "k" })).scheduledAt, "the existing job")
      assert.isNull((yield* jobs.get(now.id)).scheduledAt)
      const runAt = new Date(Date.now() + 3_600_000)
      const later = yield* jobs.enqueue({ name: "later", queue, runAt })
      assert.strictEqual(later.scheduledAt?.epochMillis, runAt.getTime())
      assert.strictEqual((yield* jobs.get(later.id)).scheduledAt?.epochMillis, runAt.getTime())
      const delayed = yield* jobs.enqueue({ name: "delayed", queue, delay: "10 minutes" })
      assert.isAbove(delayed.scheduledAt?.epochMillis ?? 0, Date.now() + 9 * 60_000)
      // a retried job shows when its next attempt is due
      yield* workers.claim("w-scheduled-at", { queues: [queue] })
      const retried = yield* workers.fail(now.id, { workerId: "w-scheduled-at", error: "again", retryable: true })
      assert.strictEqual(retried.status, "scheduled")
      assert.isNotNull(retried.scheduledAt)
      assert.isTrue(retried.isScheduled)
    }).pipe(Effect.provide(testLayer()), Effect.scoped), { timeout: 60_000 })
})
