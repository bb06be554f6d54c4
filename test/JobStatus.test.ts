import { assert, describe, it } from "@effect/vitest"
import {
  allowedFrom,
  allStatuses,
  canTransition,
  isTerminal,
  resolveStatus,
  statusAliases,
  transitions
} from "../src/Domain/JobStatus.js"
import { makeJobId } from "../src/Domain/JobId.js"

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
