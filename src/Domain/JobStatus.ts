import { Schema } from "effect"

/** The eight statuses of a job (ARCHITECTURE §1). */
export const JobStatus = Schema.Literal(
  "scheduled",
  "pending",
  "claimed",
  "running",
  "completed",
  "failed",
  "canceled",
  "deleted"
).annotations({ identifier: "JobStatus" })
export type JobStatus = typeof JobStatus.Type

export const isJobStatus = Schema.is(JobStatus)

export const allStatuses: ReadonlyArray<JobStatus> = JobStatus.literals

/** Terminal statuses never change again. */
export const TerminalStatus = Schema.Literal("completed", "failed", "canceled", "deleted").annotations({
  identifier: "TerminalStatus"
})
export type TerminalStatus = typeof TerminalStatus.Type

export const terminalStatuses: ReadonlyArray<TerminalStatus> = TerminalStatus.literals

export const isTerminal = (status: JobStatus): status is TerminalStatus =>
  (terminalStatuses as ReadonlyArray<JobStatus>).includes(status)

/** The transition table: for each status, the statuses it may move to. Anything else is `InvalidTransition`. */
export const transitions: { readonly [From in JobStatus]: ReadonlyArray<JobStatus> } = {
  scheduled: ["pending", "canceled", "deleted"],
  pending: ["claimed", "canceled", "deleted"],
  claimed: ["running", "completed", "failed", "canceled", "scheduled", "pending"],
  running: ["completed", "failed", "canceled", "scheduled", "pending"],
  completed: [],
  failed: [],
  canceled: [],
  deleted: []
}

export const canTransition = (from: JobStatus, to: JobStatus): boolean => transitions[from].includes(to)

/** The statuses a job may be in to move to `to`. */
export const allowedFrom = (to: JobStatus): ReadonlyArray<JobStatus> =>
  allStatuses.filter((from) => canTransition(from, to))

/** Names other queue systems use for our statuses; accepted as list filters. */
export const statusAliases: { readonly [alias: string]: ReadonlyArray<JobStatus> } = {
  delayed: ["scheduled"],
  queued: ["pending"],
  waiting: ["pending"],
  picked: ["claimed"],
  active: ["claimed", "running"],
  in_progress: ["claimed", "running"],
  successful: ["completed"],
  exception: ["failed"],
  cancelled: ["canceled"]
}

/**
 * Resolves a status filter term (a canonical name or an alias, case-insensitive: `IN_PROGRESS`, `cancelled`)
 * to canonical statuses, or `undefined` when the term is unknown.
 */
export const resolveStatus = (term: string): ReadonlyArray<JobStatus> | undefined => {
  const key = term.trim().toLowerCase()
  return isJobStatus(key) ? [key] : statusAliases[key]
}
