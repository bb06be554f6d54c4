import { Context } from "effect"
import type { Duration, Effect, Either, Scope } from "effect"
import type { JobId } from "../Domain/JobId.js"
import type { ClaimedJob, HeartbeatResult, ProgressAck } from "../Domain/Worker.js"
import type { ProgressReport } from "./ProgressReporter.js"
import type { ClaimOptions, CompleteItem, FailOptions, WorkerScope } from "../Workers.js"

// The port `Worker.run` works through, with no server code (its imports of the server are types only): the loop
// and the HTTP backend (`client.ts`) run in processes, and browsers, that have no database.

/** Any failure of the worker protocol: the domain errors, or a transport's own. */
export interface WorkerProtocolError {
  readonly _tag: string
  readonly message: string
}

/**
 * What `Worker.run` needs of the service: the `Workers` protocol, in this process (`Worker.local`) or over the
 * network (an HTTP or RPC client).
 */
export interface WorkerBackendShape {
  /**
   * `Worker.run` calls it uninterruptibly, so that no answer is lost: its wait for work (and a transport's request)
   * must be interruptible of its own (`Effect.interruptible`), so that a shutdown ends it at once.
   */
  readonly claim: (
    workerId: string,
    options: ClaimOptions
  ) => Effect.Effect<ReadonlyArray<ClaimedJob>, WorkerProtocolError>
  readonly heartbeat: (workerId: string) => Effect.Effect<HeartbeatResult, WorkerProtocolError>
  readonly progress: (
    id: string,
    report: ProgressReport,
    scope: { readonly workerId: string }
  ) => Effect.Effect<ProgressAck, WorkerProtocolError>
  readonly complete: (
    id: string,
    options: WorkerScope & { readonly result?: unknown }
  ) => Effect.Effect<unknown, WorkerProtocolError>
  /**
   * Completes many jobs of the worker in one round trip, answering per item (in order) the job's id or why it was
   * not completed. Optional: without it `Worker.run` completes jobs one by one.
   */
  readonly completeMany?: (
    workerId: string,
    items: ReadonlyArray<CompleteItem>
  ) => Effect.Effect<ReadonlyArray<Either.Either<unknown, WorkerProtocolError>>, WorkerProtocolError>
  /**
   * `completeMany` and, in the same round trip, a claim (started at once) of up to `claim.limit` jobs for the slots
   * those completions free; the claimed jobs are the worker's as the answer arrives. Optional: without it
   * `Worker.run` claims separately.
   */
  readonly completeAndClaim?: (
    workerId: string,
    items: ReadonlyArray<CompleteItem>,
    claim: NextClaimOptions
  ) => Effect.Effect<CompletedAndClaimed, WorkerProtocolError>
  readonly fail: (id: string, options: FailOptions) => Effect.Effect<unknown, WorkerProtocolError>
  readonly canceled: (id: string, scope: WorkerScope) => Effect.Effect<unknown, WorkerProtocolError>
  readonly release: (workerId: string, ids: ReadonlyArray<JobId>) => Effect.Effect<unknown, WorkerProtocolError>
  /**
   * The worker ids the backend's credentials may act as are this and `<this>:…` (a worker token's `sub`):
   * `Worker.run`'s default id is then one of them. Unset: any id.
   */
  readonly workerNamespace?: string | undefined
  /** Immediate cancel requests, when the backend can push them; otherwise the heartbeat reports them. */
  readonly onCancelRequested?: (
    handler: (ids: ReadonlyArray<JobId> | "*") => void
  ) => Effect.Effect<void, never, Scope.Scope>
  /** The cap of `Worker.run`'s retry backoff when its options give none (in-process: `retryMaxBackoff`). */
  readonly retryMaxBackoff?: Duration.DurationInput | undefined
}

/** The claim of `completeAndClaim`: a `claim`'s options without a wait (it claims what is ready). */
export interface NextClaimOptions {
  readonly queues?: ReadonlyArray<string> | undefined
  readonly names?: ReadonlyArray<string> | undefined
  /** At most this many jobs (0–1,000). */
  readonly limit: number
  readonly heartbeatInterval?: Duration.DurationInput | undefined
}

/** The answer of `completeAndClaim`: per item (in order) the job's id or why it was not completed; the jobs claimed. */
export interface CompletedAndClaimed {
  readonly answers: ReadonlyArray<Either.Either<unknown, WorkerProtocolError>>
  readonly claimed: ReadonlyArray<ClaimedJob>
}

export class WorkerBackend extends Context.Tag("jobwatch/WorkerBackend")<WorkerBackend, WorkerBackendShape>() {}

