// The commands of `jobwatch` that work against a running service, over its HTTP API (`--url`, `--token`, or
// JOBWATCH_URL and JOBWATCH_TOKEN): enqueue, status, list, cancel. Bundled with the command (browser-safe client).
import { Args, Command, Options } from "@effect/cli"
import { FetchHttpClient, FileSystem } from "@effect/platform"
import { Config, Console, Data, Effect, Option, Redacted, Schema } from "effect"
import { httpClient } from "../client.js"
import { JobInfo } from "../Domain/Job.js"
import { JobIdFromString, StatusFilter } from "../Domain/Requests.js"
import { isTerminal } from "../Domain/JobStatus.js"

/** A command line that cannot be followed: exit 2. */
export class RemoteUsageError extends Data.TaggedError("RemoteUsageError")<{ readonly message: string }> {}

const url = Options.text("url").pipe(
  Options.withFallbackConfig(Config.string("JOBWATCH_URL").pipe(Config.withDefault("http://127.0.0.1:8080"))),
  Options.withDescription("the service (default JOBWATCH_URL, else http://127.0.0.1:8080)")
)
const token = Options.redacted("token").pipe(
  Options.withFallbackConfig(Config.redacted("JOBWATCH_TOKEN")),
  Options.withDescription("a bearer token (default JOBWATCH_TOKEN)")
)
const json = Options.boolean("json").pipe(Options.withDescription("print JSON (one object per line)"))
const service = { url, token }

/** The HTTP API's client for `--url` and `--token`. */
const clientOf = (options: { readonly url: string; readonly token: Redacted.Redacted<string> }) =>
  httpClient({ baseUrl: options.url.replace(/\/$/, ""), token: Redacted.value(options.token) }).pipe(
    Effect.provide(FetchHttpClient.layer)
  )

const decodeId = Schema.decodeUnknown(JobIdFromString)
const idOf = (text: string) =>
  Effect.mapError(decodeId(text), () => new RemoteUsageError({ message: `${JSON.stringify(text)} is not a job id (a UUID)` }))
const parseJson = Schema.decodeUnknown(Schema.parseJson())
const decodeStatuses = Schema.decodeUnknown(StatusFilter)

/** `--payload`: JSON, or `@path` for a file's JSON. */
const payloadOf = (text: string) =>
  Effect.gen(function*() {
    const source = text.startsWith("@")
      ? yield* Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(text.slice(1))).pipe(
        Effect.mapError((error) => new RemoteUsageError({ message: `--payload ${text}: ${error.message}` }))
      )
      : text
    return yield* Effect.mapError(parseJson(source), () => new RemoteUsageError({ message: "--payload is not JSON" }))
  })

/** One job, as a line: id, status, progress, name and queue. */
const lineOf = (job: JobInfo) =>
  `${job.id}  ${job.status.padEnd(9)} ${String(Math.round(job.progress.percent)).padStart(3)}%  ${job.name}  (${job.queue})`
const encodeJob = Schema.encodeSync(JobInfo)
const printJob = (job: JobInfo, asJson: boolean) => Console.log(asJson ? JSON.stringify(encodeJob(job)) : lineOf(job))

const enqueue = Command.make("enqueue", {
  ...service,
  json,
  name: Args.text({ name: "name" }).pipe(Args.withDescription("what the job does")),
  queue: Options.text("queue").pipe(Options.optional, Options.withDescription("default: default")),
  payload: Options.text("payload").pipe(Options.optional, Options.withDescription("JSON, or @file with JSON")),
  priority: Options.integer("priority").pipe(Options.optional, Options.withDescription("higher runs first")),
  wait: Options.boolean("wait").pipe(Options.withDescription("wait until it ends; exit 1 when it failed or was canceled"))
}, (options) =>
  Effect.gen(function*() {
    const client = yield* clientOf(options)
    const payload = Option.isSome(options.payload) ? yield* payloadOf(options.payload.value) : undefined
    const ref = yield* client.jobs.enqueue({
      payload: {
        name: options.name,
        queue: Option.getOrUndefined(options.queue),
        payload,
        priority: Option.getOrUndefined(options.priority)
      }
    })
    if (!options.wait) return yield* Console.log(options.json ? JSON.stringify({ id: ref.id, status: ref.status }) : ref.id)
    const job = yield* untilTerminal(client, ref.id)
    yield* printJob(job, options.json)
    if (job.status !== "completed") return yield* Effect.sync(() => void (process.exitCode = 1))
  })).pipe(Command.withDescription("Enqueue a job; prints its id (or, with --wait, how it ended)."))

type ApiClient = Effect.Effect.Success<ReturnType<typeof clientOf>>

/** The job once terminal: long-polls of 30 s, one after the other. */
const untilTerminal = (client: ApiClient, id: JobInfo["id"]) =>
  Effect.gen(function*() {
    while (true) {
      const job = yield* client.jobs.get({ path: { id }, urlParams: {}, headers: { prefer: "wait=30" } })
      if (isTerminal(job.status)) return job
    }
  })

const status = Command.make("status", { ...service, json, id: Args.text({ name: "id" }) }, (options) =>
  Effect.gen(function*() {
    const client = yield* clientOf(options)
    const job = yield* client.jobs.get({ path: { id: yield* idOf(options.id) }, urlParams: {}, headers: {} })
    yield* printJob(job, options.json)
  })).pipe(Command.withDescription("A job: id, status, progress, name and queue (--json: all of it)."))

const list = Command.make("list", {
  ...service,
  json,
  status: Options.text("status").pipe(Options.optional, Options.withDescription("statuses or aliases, comma-separated")),
  queue: Options.text("queue").pipe(Options.optional),
  limit: Options.integer("limit").pipe(Options.optional, Options.withDescription("at most this many (default 10)"))
}, (options) =>
  Effect.gen(function*() {
    const client = yield* clientOf(options)
    const statuses = Option.isNone(options.status) ? undefined : yield* decodeStatuses(options.status.value).pipe(
      Effect.mapError(() => new RemoteUsageError({ message: `--status ${options.status.pipe(Option.getOrElse(() => ""))}: not statuses jobwatch knows` }))
    )
    const page = yield* client.jobs.list({
      urlParams: {
        status: statuses,
        queue: Option.getOrUndefined(options.queue),
        limit: Option.getOrUndefined(options.limit)
      }
    })
    yield* Effect.forEach(page.jobs, (job) => printJob(job, options.json), { discard: true })
  })).pipe(Command.withDescription("Your jobs, newest first (an admin's: everyone's)."))

const cancel = Command.make("cancel", { ...service, json, id: Args.text({ name: "id" }) }, (options) =>
  Effect.gen(function*() {
    const client = yield* clientOf(options)
    const job = yield* client.jobs.cancel({ path: { id: yield* idOf(options.id) } })
    yield* printJob(job, options.json)
  })).pipe(Command.withDescription("Cancel a job (a running one is asked to stop: cancelRequested)."))

export const remoteCommands = [enqueue, status, list, cancel] as const
