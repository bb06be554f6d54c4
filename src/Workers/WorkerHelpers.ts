/**
 * The worker calls by the names users of the seed systems know, for code that runs a job in this process (no
 * worker id: any holder; pass `workerId` to act as one worker only). They work by id alone on an external job
 * (`tracking: "external"`, run outside jobwatch): `startJob` on a pending one starts it, `progress` 0 keeps it
 * pending and above 0 starts it, `completeJob` and `failJob` end it (a failure is final: retries are the external
 * system's).
 */
import { Effect } from "effect"
import type { ArtefactInput } from "../Domain/Job.js"
import { Workers } from "../Workers.js"

export interface HelperScope {
  readonly workerId?: string | undefined
}

/** The job started: `claimed` → `running`. */
export const startJob = (id: string, message?: string, scope: HelperScope = {}) =>
  Effect.flatMap(Workers, (workers) => workers.start(id, { ...scope, message }))

/** Reports progress (throttled; a lower percent than the last fails with `ProgressRegression`). */
export const progress = (
  id: string,
  percent: number,
  step?: string,
  message?: string,
  data?: unknown,
  scope: HelperScope & { readonly force?: boolean | undefined } = {}
) =>
  Effect.flatMap(
    Workers,
    (workers) => workers.progress(id, { percent, step, message, data, force: scope.force }, { workerId: scope.workerId })
  )

/** The job completed with `result` (and `artefacts`, attached in the same transaction). */
export const completeJob = (
  id: string,
  result?: unknown,
  message?: string,
  scope: HelperScope & { readonly artefacts?: ReadonlyArray<ArtefactInput> | undefined } = {}
) => Effect.flatMap(Workers, (workers) => workers.complete(id, { ...scope, result, message }))

/** Attaches artefacts to a job that runs (one of a name the job has replaces it). */
export const attachArtefacts = (id: string, artefacts: ReadonlyArray<ArtefactInput>, scope: HelperScope = {}) =>
  Effect.flatMap(Workers, (workers) => workers.attach(id, artefacts, scope))

/**
 * The job failed with `code` and `message`: retried while attempts remain unless `retryable` is false. `progress`
 * records how far it got.
 */
export const failJob = (
  id: string,
  code: string | undefined,
  message: string,
  options: HelperScope & {
    readonly progress?: number | undefined
    readonly retryable?: boolean | undefined
    readonly artefacts?: ReadonlyArray<ArtefactInput> | undefined
  } = {}
) =>
  Effect.flatMap(Workers, (workers) =>
    workers.fail(id, {
      workerId: options.workerId,
      code,
      error: message,
      retryable: options.retryable,
      progress: options.progress,
      artefacts: options.artefacts
    }))
