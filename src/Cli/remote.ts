// The commands of `jobwatch` that work against a running service, over its HTTP API (`--url`, `--token`, or
// JOBWATCH_URL and JOBWATCH_TOKEN): enqueue, status, list, cancel, wait and tail. Bundled with the command (browser-safe client).
import { Args, Command, Options } from "@effect/cli"
import { FileSystem } from "@effect/platform"
import { Console, Effect, Option, Schema } from "effect"
import type { JobInfo } from "../Domain/Job.js"
import { isTerminal } from "../Domain/JobStatus.js"
import type { ApiClient } from "./service.js"
import { clientOf, exitWith, idOf, json, printJob, RemoteUsageError, service, statusesOf } from "./service.js"
import { tail, waitCommand } from "./watch.js"

const parseJson = Schema.decodeUnknown(Schema.parseJson())

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
    if (job.status !== "completed") return yield* exitWith(1)
  })).pipe(Command.withDescription("Enqueue a job; prints its id (or, with --wait, how it ended)."))

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
    const statuses = yield* statusesOf(options.status)
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

export const remoteCommands = [enqueue, status, list, cancel, waitCommand, tail] as const
