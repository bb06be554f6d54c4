import type { JobOutcome } from "../Domain/Job.js"
import type { JobId } from "../Domain/JobId.js"
import { decodeOutcomePayload } from "./Outcome.js"

/**
 * A doorbell payload (sql/functions/job_events_doorbell.sql), read: which jobs changed, up to which version, and
 * which of those changes a waiter (who needs only terminal outcomes) must read for.
 */
export interface Doorbell {
  /** Re-read everything watched (`*`, or an empty payload). */
  readonly everything: boolean
  /** `job_id:version` of every changed job, the highest version per job, flattened: id, version, id, version… */
  readonly changes: ReadonlyArray<JobId | number>
  /**
   * The jobs whose change may be terminal without their outcome in `outcomes`: waiters read for these only.
   * `"any"` for a payload of the older shape (pairs only, outcomes on their own channel) or one whose outcomes
   * could not be decoded: any change may then be terminal.
   */
  readonly uncarried: ReadonlySet<JobId> | "any"
  /** The terminal outcomes the payload carries. */
  readonly outcomes: ReadonlyArray<JobOutcome>
  /** It had outcomes that could not be decoded (never expected; their jobs are read instead). */
  readonly malformed: boolean
}

const everything: Doorbell = { everything: true, changes: [], uncarried: "any", outcomes: [], malformed: false }
const none: ReadonlySet<JobId> = new Set()

/**
 * Reads a doorbell payload. Never fails: an item that is not a pair is skipped, and outcomes that are not what the
 * trigger writes are dropped (the jobs are then read, as for an older payload).
 */
export const parseDoorbell = (payload: string, decodeOutcomes = true): Doorbell => {
  if (payload === "*" || payload === "") return everything
  const modern = payload.startsWith("#,")
  // the outcomes, last; neither a job id nor a version holds a '['
  const bracket = modern ? payload.indexOf(",[") : -1
  const items = (bracket === -1 ? payload : payload.slice(0, bracket)).split(",")
  const changes: Array<JobId | number> = []
  let flagged: Set<JobId> | undefined
  for (let i = modern ? 1 : 0; i < items.length; i++) {
    const item = items[i]!
    if (modern && item.startsWith("!")) {
      ;(flagged ??= new Set()).add(item.slice(1) as JobId)
      continue
    }
    const colon = item.lastIndexOf(":")
    const version = Number(item.slice(colon + 1))
    if (colon <= 0 || !Number.isSafeInteger(version)) continue
    changes.push(item.slice(0, colon) as JobId, version)
  }
  if (!modern) return { everything: false, changes, uncarried: "any", outcomes: [], malformed: false }
  // readers of the changes alone (the stream tail) skip the decode
  const outcomes = bracket === -1 || !decodeOutcomes ? [] : decodeOutcomePayload(payload.slice(bracket + 1))
  if (outcomes === undefined) return { everything: false, changes, uncarried: "any", outcomes: [], malformed: true }
  return { everything: false, changes, uncarried: flagged ?? none, outcomes, malformed: false }
}
