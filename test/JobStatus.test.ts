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
    assert.deepStrictEqual(resolveStatus("IN_PROGRESS"), ["running"])
    assert.deepStrictEqual(resolveStatus(" Queued "), ["pending"])
    assert.deepStrictEqual(resolveStatus("active"), ["claimed", "running"])
    assert.deepStrictEqual(resolveStatus("cancelled"), ["canceled"])
    assert.isUndefined(resolveStatus("exploded"))
    for (const targets of Object.values(statusAliases)) {
      for (const target of targets) assert.include(allStatuses, target)
    }
  })
})
