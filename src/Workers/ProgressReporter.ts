import { Cause, Clock, Duration, Effect, Either, FiberSet, HashMap, Metric, Option, Ref } from "effect"
import { JobWatchConfig } from "../Config.js"
import type { InvalidInput, InvalidTransition, JobNotFound, NotJobHolder, PayloadTooLarge } from "../Domain/Errors.js"
import { InvalidProgress, ProgressRegression } from "../Domain/Errors.js"
import type { JobId } from "../Domain/JobId.js"
import { ProgressAck } from "../Domain/Worker.js"
import { describeError } from "../internal/retry.js"
import { NoteText, StepText } from "../Domain/Requests.js"
import { isStorableNumber, preview } from "../Domain/Values.js"
import { decodeField, jsonValue } from "../internal/invalid.js"
import { LocalEvents } from "../EventLog.js"
import { recordChange } from "../Metrics/jobs.js"
import type { ProgressWrite } from "./ProgressRepo.js"
import { ProgressRepo } from "./ProgressRepo.js"

/** A progress report. `percent` is clamped to 0–100; `force` writes at once, past the throttle. */
export interface ProgressReport {
  readonly percent: number
  readonly step?: string | undefined
  readonly message?: string | undefined
  readonly data?: unknown
  readonly force?: boolean | undefined
}

export type ProgressError =
  | InvalidProgress
  | InvalidInput
  | PayloadTooLarge
  | ProgressRegression
  | JobNotFound
  | InvalidTransition
  | NotJobHolder

/** Per job while it reports: what throttling needs. Dropped after a window without reports. */
interface Slot {
  /** The highest percent accepted (written or pending): a lower report is a regression. */
  readonly lastPercent: number
  /** When the last write started (clock ms). */
  readonly lastWriteAt: number
  /** The latest report not written yet, with the worker it came from. */
  readonly pending: Option.Option<{ readonly write: ProgressWrite; readonly workerId: string | undefined }>
  /** Serialises the writes of this job, so that they land in the order they were accepted. */
  readonly lock: Effect.Semaphore
}

const writesTotal = Metric.counter("jobwatch_progress_writes", {
  description: "progress reports written to the database",
  incremental: true
})
const reportsTotal = Metric.counter("jobwatch_progress_reports", {
  description: "progress reports received",
  incremental: true
})

const MAX_DATA_BYTES = 64 * 1024

/** Validates a report: percent a finite number (clamped to 0–100), step and message short texts, data JSON. */
const decodeStep = decodeField(StepText, "step")
const decodeMessage = decodeField(NoteText, "message")

export const validateReport = (
  report: ProgressReport
): Either.Either<ProgressWrite, InvalidProgress | InvalidInput | PayloadTooLarge> => {
  if (typeof report !== "object" || report === null) {
    return Either.left(new InvalidProgress({ field: "progress", message: "must be an object with a percent" }))
  }
  const percent = report.percent
  if (typeof percent !== "number" || !Number.isFinite(percent)) {
    return Either.left(new InvalidProgress({ field: "percent", message: `must be a finite number, got ${preview(percent)}` }))
  }
  const clamped = Math.min(100, Math.max(0, percent))
  if (!isStorableNumber(clamped)) {
    return Either.left(new InvalidProgress({ field: "percent", message: `must be 0 or at least 2.2250738585072014e-308, got ${percent}` }))
  }
  const text = (decode: (u: unknown) => Either.Either<string, InvalidInput>, value: unknown) =>
    value === undefined || value === null ? Either.right(undefined) : decode(value)
  return Either.all({
    percent: Either.right(clamped),
    step: text(decodeStep, report.step),
    message: text(decodeMessage, report.message),
    dataJson: report.data === undefined ? Either.right(undefined) : jsonValue("data", report.data, MAX_DATA_BYTES)
  })
}

/**
 * Throttled, monotonic progress. Per job, the first report is written at once; later ones within the throttle
 * window are coalesced in a `Ref` and the latest lands when the window ends (so at most one write per window, and
 * the last report always lands); `force` writes at once. A report lower than the last accepted one fails with
 * `ProgressRegression` and writes nothing; the SQL write keeps the maximum too, so two processes cannot move progress
 * backwards. Closing the layer's scope writes everything pending.
 */
export class ProgressReporter extends Effect.Service<ProgressReporter>()("jobwatch/ProgressReporter", {
  dependencies: [ProgressRepo.Default, LocalEvents.Default],
  scoped: Effect.gen(function*() {
    const repo = yield* ProgressRepo
    const local = yield* LocalEvents
    const config = yield* JobWatchConfig
    const windowMs = Duration.toMillis(config.progressThrottle)
    // a persistent map: an update costs O(log n) however many jobs report at once
    const slots = yield* Ref.make(HashMap.empty<JobId, Slot>())
    const timers = yield* FiberSet.make()

    const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms))

    const update = (id: JobId, f: (slot: Slot | undefined) => Slot | undefined) =>
      Ref.update(slots, (map) => {
        const slot = f(Option.getOrUndefined(HashMap.get(map, id)))
        return slot === undefined ? HashMap.remove(map, id) : HashMap.set(map, id, slot)
      })

    /** Writes one report (under the job's lock); a refusal by the database corrects what the slot believes. */
    const write = (id: JobId, write: ProgressWrite, workerId: string | undefined) =>
      Effect.gen(function*() {
        const { event, job } = yield* repo.writeProgress(id, write, { workerId, now: yield* now }).pipe(
          Effect.tapError((error) =>
            error._tag === "ProgressRegression"
              ? update(id, (slot) => slot && { ...slot, lastPercent: Math.max(slot.lastPercent, error.current) })
              : Effect.void
          )
        )
        yield* local.publishCommitted(() => event)
        yield* Metric.increment(writesTotal)
        // a first report may start the job (an external one: from pending)
        if (event.previousStatus !== null && event.previousStatus !== event.status) {
          recordChange(job.queue, event.previousStatus, event.status)
        }
        return job
      })

    /**
     * At the end of the window after the last write: writes the pending report, if any (and waits another
     * window), or drops the slot.
     */
    const scheduleFlush = (id: JobId, at: number): Effect.Effect<void> =>
      Effect.gen(function*() {
        const wait = at - (yield* Clock.currentTimeMillis)
        if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
        const slot = Option.getOrUndefined(HashMap.get(yield* Ref.get(slots), id))
        if (slot === undefined) return
        const next = yield* slot.lock.withPermits(1)(
          Effect.gen(function*() {
            const startedAt = yield* Clock.currentTimeMillis
            const taken = yield* Ref.modify(slots, (map): readonly [Slot["pending"], HashMap.HashMap<JobId, Slot>] => {
              const current = Option.getOrUndefined(HashMap.get(map, id))
              if (current === undefined || Option.isNone(current.pending)) return [Option.none(), HashMap.remove(map, id)]
              return [current.pending, HashMap.set(map, id, { ...current, pending: Option.none(), lastWriteAt: startedAt })]
            })
            if (Option.isNone(taken)) return Option.none<number>()
            // refused, or the database failed: dropped (a later report supersedes it), and the timer lives on to
            // close the window, or the job's later reports would be coalesced into a slot nobody flushes
            yield* write(id, taken.value.write, taken.value.workerId).pipe(
              Effect.catchAllCause((cause) =>
                Cause.isInterruptedOnly(cause)
                  ? Effect.interrupt
                  : Effect.logDebug(`a coalesced progress report of job ${id} was not written: ${describeError(cause)}`).pipe(
                    Effect.annotateLogs("jobId", id)
                  )
              )
            )
            return Option.some(startedAt + windowMs)
          })
        )
        if (Option.isSome(next)) yield* scheduleFlush(id, next.value)
      })

    const startTimer = (id: JobId, at: number) => FiberSet.run(timers, scheduleFlush(id, at)).pipe(Effect.asVoid)

    type Decision =
      | { readonly _tag: "Write"; readonly lock: Effect.Semaphore; readonly fresh: boolean }
      | { readonly _tag: "Coalesced" }
      | { readonly _tag: "Regression"; readonly current: number }

    /** Writes a report now, under the job's lock (traced: a write is a round trip; a coalesced report is not). */
    const writeNow = (
      id: JobId,
      validated: ProgressWrite,
      workerId: string | undefined,
      decision: { readonly lock: Effect.Semaphore; readonly fresh: boolean },
      at: number
    ) =>
      Effect.gen(function*() {
        if (decision.fresh) yield* startTimer(id, at + windowMs)
        const info = yield* decision.lock.withPermits(1)(write(id, validated, workerId)).pipe(
          // a job that cannot take progress (unknown, not held, finished) has nothing to throttle
          Effect.tapError((error) => error._tag === "ProgressRegression" ? Effect.void : update(id, () => undefined))
        )
        return new ProgressAck({ accepted: true, persisted: true, percent: info.progress.percent }, true)
      }).pipe(Effect.withSpan("ProgressReporter.write", { attributes: { jobId: id } }))

    /**
     * Reports progress of job `id` (by `workerId` when given: only the holder may). The hot path: a coalesced
     * report is a validation and one `Ref` update, a few microseconds, so that a tight loop of reports stays cheap.
     */
    const progress = (
      id: JobId,
      report: ProgressReport,
      options: { readonly workerId?: string | undefined } = {}
    ): Effect.Effect<ProgressAck, ProgressError> =>
      Effect.flatMap(Clock.currentTimeMillis, (at) => {
        const validated = validateReport(report)
        if (Either.isLeft(validated)) return Effect.fail(validated.left)
        const write = validated.right
        reportsTotal.unsafeUpdate(1, [])
        // decided atomically: write now (first report, or forced) or coalesce into the pending report
        return Effect.flatMap(
          Ref.modify(slots, (map): [Decision, HashMap.HashMap<JobId, Slot>] => {
            const slot = Option.getOrUndefined(HashMap.get(map, id))
            if (slot !== undefined && write.percent < slot.lastPercent) {
              return [{ _tag: "Regression", current: slot.lastPercent }, map]
            }
            if (slot === undefined) {
              const lock = Effect.unsafeMakeSemaphore(1)
              const fresh: Slot = { lastPercent: write.percent, lastWriteAt: at, pending: Option.none(), lock }
              return [{ _tag: "Write", lock, fresh: true }, HashMap.set(map, id, fresh)]
            }
            if (report.force === true) {
              const forced: Slot = { ...slot, lastPercent: write.percent, lastWriteAt: at, pending: Option.none() }
              return [{ _tag: "Write", lock: slot.lock, fresh: false }, HashMap.set(map, id, forced)]
            }
            const pending = Option.some({ write, workerId: options.workerId })
            return [{ _tag: "Coalesced" }, HashMap.set(map, id, { ...slot, lastPercent: write.percent, pending })]
          }),
          (decision): Effect.Effect<ProgressAck, ProgressError> => {
            switch (decision._tag) {
              case "Regression":
                return Effect.fail(new ProgressRegression({ id, current: decision.current, requested: write.percent }))
              case "Coalesced":
                return Effect.succeed(new ProgressAck({ accepted: true, persisted: false, percent: write.percent }, true))
              case "Write":
                return writeNow(id, write, options.workerId, decision, at)
            }
          }
        )
      })

    /** Flushes a job that has a slot (traced: it may write). */
    const flushSlot = (id: JobId, slot: Slot) =>
      slot.lock.withPermits(1)(
        Effect.gen(function*() {
          const current = Option.getOrUndefined(HashMap.get(yield* Ref.get(slots), id))
          yield* update(id, () => undefined)
          if (current !== undefined && Option.isSome(current.pending)) {
            yield* write(id, current.pending.value.write, current.pending.value.workerId).pipe(
              Effect.catchAll((error) =>
                Effect.logDebug(`pending progress of job ${id} was not written: ${error.message}`).pipe(
                  Effect.annotateLogs("jobId", id)
                ))
            )
          }
        })
      ).pipe(Effect.withSpan("ProgressReporter.flush", { attributes: { jobId: id } }))

    /**
     * Writes the pending report of job `id` now, if there is one, and forgets the job (before a terminal change).
     * A job that never reported (most, on the completion path) costs one map lookup.
     */
    const flush = (id: JobId): Effect.Effect<void> =>
      Effect.flatMap(Ref.get(slots), (map) => {
        const slot = Option.getOrUndefined(HashMap.get(map, id))
        return slot === undefined ? Effect.void : flushSlot(id, slot)
      })

    /** Reports not written yet, per job (tests and diagnostics). */
    const pendingCount = Effect.map(
      Ref.get(slots),
      (map) => HashMap.reduce(map, 0, (n, slot) => (Option.isSome(slot.pending) ? n + 1 : n))
    )

    // closing the scope writes everything pending
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const ids = [...HashMap.keys(yield* Ref.get(slots))]
        yield* Effect.forEach(ids, flush, { concurrency: 10, discard: true })
      })
    )

    return { progress, flush, pendingCount } as const
  }).pipe(Effect.annotateLogs("module", "ProgressReporter"))
}) {}
