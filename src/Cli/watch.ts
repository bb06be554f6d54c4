// `jobwatch wait ID…` (a live progress bar per job, or JSON lines) and `jobwatch tail` (the caller's events as they
// happen, resumable), over the RPC API's streams (`JobWatch`, `EventsWatch`): each follows where it left off when the
// connection drops or the service restarts.
import { Args, Command, Options } from "@effect/cli"
import cliProgress from "cli-progress"
import { Console, Duration, Effect, Option, Schema, Stream } from "effect"
import type { JobInfo } from "../Domain/Job.js"
import type { JobId } from "../Domain/JobId.js"
import { JobEvent } from "../Domain/JobEvent.js"
import { isTerminal } from "../Domain/JobStatus.js"
import type { RpcApi } from "./service.js"
import { durationOption, encodeJob, exitWith, idOf, json, lineOf, rpcOf, service, statusesOf } from "./service.js"

/** A failure of the connection (not an answer of the service): retried, resuming where the stream was. */
const isTransport = (error: unknown) =>
  typeof error === "object" && error !== null && "_tag" in error && error._tag === "RpcClientError"

const backoff = (failures: number) => Duration.millis(Math.min(5_000, 100 * 2 ** Math.min(failures, 6)))

/**
 * Runs `open` (a stream from where the last one stopped) until `done`: a stream that ends early (the service
 * draining) or whose connection fails is opened again, with a backoff; `notice` hears the first failure of a streak
 * and the recovery. Answers of the service (not found, refused) fail.
 */
export const follow = <E, R>(
  open: () => Stream.Stream<unknown, E, R>,
  done: () => boolean,
  notice: (text: string) => Effect.Effect<void>
): Effect.Effect<void, E, R> =>
  Effect.gen(function*() {
    let failures = 0
    while (!done()) {
      const ran = yield* Effect.either(Stream.runDrain(open().pipe(Stream.tap(() => {
        if (failures > 0) {
          failures = 0
          return notice("connected again")
        }
        return Effect.void
      }))))
      if (done()) return
      if (ran._tag === "Left") {
        if (!isTransport(ran.left)) return yield* Effect.fail(ran.left)
        if (failures === 0) yield* notice(`lost the service (${(ran.left as { readonly message?: string }).message ?? "connection"}): retrying`)
        failures++
      }
      yield* Effect.sleep(backoff(failures))
    }
  })

interface Seen {
  version: number
  status: JobInfo["status"]
  percent: number
  step: string
}

/** How `wait` shows what happens: a bar per job on stderr, or JSON lines on stdout. */
interface View {
  readonly event: (event: JobEvent, seen: Seen) => Effect.Effect<void>
  readonly notice: (text: string) => Effect.Effect<void>
  readonly stop: Effect.Effect<void>
}

const encodeEvent = Schema.encodeSync(JobEvent)

const jsonView: View = {
  event: (event) =>
    Console.log(JSON.stringify({
      kind: "event",
      jobId: event.jobId,
      version: event.version,
      type: event.type,
      status: event.status,
      percent: event.progress,
      step: event.step,
      message: event.message,
      timestamp: encodeEvent(event).timestamp
    })),
  notice: (text) => Console.error(`jobwatch: ${text}`),
  stop: Effect.void
}

const clip = (text: string, width: number) => (text.length > width ? `${text.slice(0, width - 1)}…` : text.padEnd(width))

const barView = (jobs: ReadonlyArray<JobInfo>) =>
  Effect.acquireRelease(
    Effect.sync((): View => {
      const multibar = new cliProgress.MultiBar({
        stream: process.stderr,
        format: "{label} {bar} {percentage}% {status} {step}",
        barsize: 24,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        autopadding: true,
        fps: 10
      }, cliProgress.Presets.shades_classic)
      const bars = new Map(jobs.map((job) => [
        job.id,
        multibar.create(100, job.progress.percent, {
          label: `${clip(job.name, 16)} ${job.id.slice(-8)}`,
          status: clip(job.status, 9),
          step: clip(job.progress.step ?? "", 20)
        })
      ]))
      let stopped = false
      return {
        event: (event, seen) =>
          Effect.sync(() =>
            bars.get(event.jobId)?.update(seen.status === "completed" ? 100 : seen.percent, {
              status: clip(seen.status, 9),
              step: clip(seen.step, 20)
            })
          ),
        notice: (text) => Effect.sync(() => multibar.log(`jobwatch: ${text}\n`)),
        stop: Effect.sync(() => {
          if (stopped) return
          stopped = true
          multibar.stop()
        })
      }
    }),
    (view) => view.stop
  )

/** Whether `wait` draws bars: on terminals, unless `--json`. */
const drawsBars = (asJson: boolean) => !asJson && process.stdout.isTTY === true && process.stderr.isTTY === true

const waitFor = (rpc: RpcApi, options: { readonly ids: ReadonlyArray<string>; readonly json: boolean; readonly timeout: Option.Option<Duration.Duration> }) =>
  Effect.gen(function*() {
    const ids = [...new Set(yield* Effect.forEach(options.ids, idOf))]
    const first = yield* Effect.forEach(ids, (id) => rpc.JobGet({ id }), { concurrency: 8 })
    const seen = new Map<JobId, Seen>(first.map((job) => [job.id, {
      version: job.version,
      status: job.status,
      percent: job.progress.percent,
      step: job.progress.step ?? ""
    }]))
    const bars = drawsBars(options.json)
    const view = bars ? yield* barView(first) : jsonView
    // JSON lines begin with each job as it stands: the events that follow are the ones after it
    if (!bars) {
      yield* Effect.forEach(first, (job) =>
        Console.log(JSON.stringify({
          kind: "state",
          jobId: job.id,
          version: job.version,
          status: job.status,
          percent: job.progress.percent,
          step: job.progress.step
        })), { discard: true })
    }
    const watchOne = (id: JobId) => {
      const state = seen.get(id)!
      return follow(
        () =>
          rpc.JobWatch({ id, afterVersion: state.version }).pipe(
            Stream.tap((event) => {
              if (event.version <= state.version) return Effect.void
              state.version = event.version
              state.status = event.status
              state.percent = event.progress
              state.step = event.step ?? state.step
              return view.event(event, state)
            })
          ),
        () => isTerminal(state.status),
        view.notice
      )
    }
    const all = Effect.forEach(ids, watchOne, { concurrency: "unbounded", discard: true })
    const finished = Option.isNone(options.timeout)
      ? yield* Effect.as(all, true)
      : yield* Effect.timeoutTo(all, { duration: options.timeout.value, onSuccess: () => true, onTimeout: () => false })
    yield* view.stop
    const last = yield* Effect.forEach(ids, (id) => rpc.JobGet({ id }), { concurrency: 8 })
    yield* Effect.forEach(
      last,
      (job) => Console.log(bars ? lineOf(job) : JSON.stringify({ kind: "outcome", job: encodeJob(job) })),
      { discard: true }
    )
    if (!finished) {
      yield* Console.error(`jobwatch: not all ended within ${Duration.format(Option.getOrThrow(options.timeout))}`)
      return yield* exitWith(2)
    }
    if (last.some((job) => job.status !== "completed")) yield* exitWith(1)
  })

export const waitCommand = Command.make("wait", {
  ...service,
  json,
  timeout: durationOption("timeout", "give up after this long: exit 2 (default: wait as long as it takes)").pipe(Options.optional),
  ids: Args.text({ name: "id" }).pipe(Args.atLeast(1), Args.withDescription("the jobs to wait for"))
}, (options) =>
  Effect.scoped(Effect.flatMap(rpcOf(options), (rpc) => waitFor(rpc, options)))).pipe(
    Command.withDescription(
      "Wait until every job ends, with a live progress bar per job on stderr (JSON lines on stdout without a " +
        "terminal, or with --json), then print how each ended. Exit 0: all completed; 1: one failed or was " +
        "canceled; 2: --timeout passed."
    )
  )

const eventLine = (event: JobEvent) =>
  `${encodeEvent(event).timestamp}  ${event.jobId}  ${event.type.padEnd(14)} ${event.status.padEnd(9)} ` +
  `${String(Math.round(event.progress)).padStart(3)}%${event.step === null ? "" : `  ${event.step}`}`

export const tail = Command.make("tail", {
  ...service,
  json,
  queue: Options.text("queue").pipe(Options.optional, Options.withDescription("only this queue")),
  name: Options.text("name").pipe(Options.optional, Options.withDescription("only jobs of this name")),
  status: Options.text("status").pipe(Options.optional, Options.withDescription("only these statuses (comma-separated)")),
  cursor: Options.text("cursor").pipe(Options.optional, Options.withDescription("resume after this cursor (from --json, or the line printed on exit)")),
  count: Options.integer("count").pipe(Options.optional, Options.withDescription("stop after this many events"))
}, (options) =>
  Effect.gen(function*() {
    const status = yield* statusesOf(options.status)
    const rpc = yield* rpcOf(options)
    let cursor = Option.getOrUndefined(options.cursor)
    let printed = 0
    const limit = Option.getOrElse(options.count, () => Infinity)
    yield* Effect.addFinalizer(() =>
      cursor === undefined || options.json ? Effect.void : Console.error(`jobwatch: resume with --cursor ${cursor}`)
    )
    yield* follow(
      () =>
        rpc.EventsWatch({
          queue: Option.getOrUndefined(options.queue),
          name: Option.getOrUndefined(options.name),
          status,
          cursor
        }).pipe(
          (events) => (limit === Infinity ? events : Stream.take(events, limit - printed)),
          Stream.tap((item) => {
            cursor = item.cursor
            printed++
            return Console.log(
              options.json ? JSON.stringify({ cursor: item.cursor, event: encodeEvent(item.event) }) : eventLine(item.event)
            )
          })
        ),
      () => printed >= limit,
      (text) => Console.error(`jobwatch: ${text}`)
    )
  }).pipe(Effect.scoped)).pipe(
    Command.withDescription(
      "Print your jobs' events as they happen (an admin's: everyone's), until Ctrl-C or --count; resumable with " +
        "--cursor, and across the service's restarts."
    )
  )
