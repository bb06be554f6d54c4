/** The checks of the worker operations' inputs from code, by the schemas the HTTP API and the RPC group decode with. */
import type { Duration, Effect } from "effect"
import { Either, Schema } from "effect"
import type { ArtefactInput } from "../Domain/Job.js"
import { InvalidInput } from "../Domain/Errors.js"
import type { JobId } from "../Domain/JobId.js"
import { ClaimLimit, during, ErrorCode, ErrorMessage, JobIdFromString, Names, NoteText, WorkerIdText } from "../Domain/Requests.js"
import { decodeField, decodeFieldAt } from "../internal/invalid.js"

export const workerIdOf = decodeField(WorkerIdText, "workerId")
export const queuesOf = decodeField(Names, "queues")
export const namesOf = decodeField(Names, "names")
export const limitOf = decodeField(ClaimLimit, "limit")
export const waitOf = decodeField(during("claimWait"), "wait")
// a lease is an interval of PostgreSQL's: 1e13 s is out of its range
export const heartbeatOf = decodeField(during("heartbeat"), "heartbeatInterval")
export const jobIdAt = decodeFieldAt(JobIdFromString)
/** A job id as this service writes them (lowercase), which is what a worker sends back: no schema run needed. */
export const canonicalJobId = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
export const jobIdOf = (field = "id") => (value: unknown): Either.Either<JobId, InvalidInput> =>
  typeof value === "string" && canonicalJobId.test(value) ? Either.right(value as JobId) : jobIdAt(value, field)
export const noteAt = decodeFieldAt(NoteText)
export const noteOf = (field: string) => (value: unknown) =>
  value === undefined || value === null ? Either.right(null) : noteAt(value, field)
export const messageOf = noteOf("message")
export const codeOf = decodeField(Schema.NullishOr(ErrorCode), "code")
export const errorOf = decodeField(ErrorMessage, "error")
export const retryableOf = decodeField(Schema.Boolean, "retryable")
export const MAX_COMPLETE_MANY = 1000

export interface ClaimOptions {
  /** The queues served; default `["default"]`. */
  readonly queues?: ReadonlyArray<string> | undefined
  /** Only jobs of these names. */
  readonly names?: ReadonlyArray<string> | undefined
  /** At most this many jobs (1–1,000); default 1. */
  readonly limit?: number | undefined
  /** When nothing is ready, wait up to this long for a job (woken by the database, not by polling). */
  readonly wait?: Duration.DurationInput | undefined
  /** How often this worker heartbeats (its leases last 1.5 × this); default `heartbeatInterval` of the config. */
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  /** Start the jobs as they are claimed (`running` at once, one write fewer than claim then `start`). */
  readonly start?: boolean | undefined
  /** When this completes (a server that drains), a waiting claim stops waiting and answers what it claims then. */
  readonly until?: Effect.Effect<void> | undefined
}

/** The worker acting on a job: only the job's holder may change it. Omitted: trusted in-process code, any holder. */
export interface WorkerScope {
  readonly workerId?: string | undefined
  /** A note for the job's event. */
  readonly message?: string | undefined
}

/** One job of `completeMany`. */
export interface CompleteItem {
  readonly id: string
  readonly result?: unknown
  readonly message?: string | undefined
}

export interface FailOptions extends WorkerScope {
  /** A machine-readable code (`timeout`, `invalid_input`, …). */
  readonly code?: string | undefined
  /** What went wrong (required). */
  readonly error: string
  /** Whether another attempt may follow (when attempts remain); default true. */
  readonly retryable?: boolean | undefined
  /** The progress reached, written (forced) before the job fails. */
  readonly progress?: number | undefined
  /** Attached in the same transaction as the failure (its event carries them). */
  readonly artefacts?: ReadonlyArray<ArtefactInput> | undefined
}
