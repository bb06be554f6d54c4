// What the commands that work against a running service share: `--url`, `--token` (or JOBWATCH_URL and
// JOBWATCH_TOKEN), `--json`, their clients, and how they read ids and print jobs. Bundled with the command.
import { HelpDoc, Options, ValidationError } from "@effect/cli"
import { FetchHttpClient, HttpClient } from "@effect/platform"
import { Config, Console, Data, Effect, Layer, Option, Redacted, Schema } from "effect"
import { httpClient, rpcClient } from "../client.js"
import { parseDuration } from "../Config.js"
import { JobInfo } from "../Domain/Job.js"
import { JobIdFromString, StatusFilter } from "../Domain/Requests.js"

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
export const json = Options.boolean("json").pipe(Options.withDescription("print JSON (one object per line)"))
export const service = { url, token }

export interface ServiceOptions {
  readonly url: string
  readonly token: Redacted.Redacted<string>
}

const clientOptions = (options: ServiceOptions) => ({ baseUrl: options.url.replace(/\/$/, ""), token: Redacted.value(options.token) })

// no `traceparent` header: the command's spans go nowhere, and a job would keep a trace context no one can follow
const fetchUntraced = Layer.effect(HttpClient.HttpClient, Effect.map(HttpClient.HttpClient, HttpClient.withTracerPropagation(false)))
  .pipe(Layer.provide(FetchHttpClient.layer))

/** The HTTP API's client for `--url` and `--token`. */
export const clientOf = (options: ServiceOptions) =>
  httpClient(clientOptions(options)).pipe(Effect.provide(fetchUntraced))

/** The RPC client (streams) for `--url` and `--token`, in the scope. */
export const rpcOf = (options: ServiceOptions) => rpcClient(clientOptions(options)).pipe(Effect.provide(fetchUntraced))

export type ApiClient = Effect.Effect.Success<ReturnType<typeof clientOf>>
export type RpcApi = Effect.Effect.Success<ReturnType<typeof rpcOf>>

const decodeId = Schema.decodeUnknown(JobIdFromString)
export const idOf = (text: string) =>
  Effect.mapError(decodeId(text), () => new RemoteUsageError({ message: `${JSON.stringify(text)} is not a job id (a UUID)` }))

const decodeStatuses = Schema.decodeUnknown(StatusFilter)
/** `--status`: statuses or their aliases, comma-separated. */
export const statusesOf = (status: Option.Option<string>) =>
  Option.isNone(status) ? Effect.succeed(undefined) : decodeStatuses(status.value).pipe(
    Effect.mapError(() => new RemoteUsageError({ message: `--status ${status.value}: not statuses jobwatch knows` }))
  )

/** A duration option (`15m`, `1h`, `30d`): a bad one is exit 2 with the rule. */
export const durationOption = (name: string, description: string) =>
  Options.text(name).pipe(
    Options.withDescription(description),
    Options.mapEffect((text) =>
      Option.match(parseDuration(text), {
        onNone: () =>
          Effect.fail(ValidationError.invalidValue(
            HelpDoc.p(`--${name} must be a duration such as 15m, 1h or 30d, not ${JSON.stringify(text)}`)
          )),
        onSome: Effect.succeed
      })
    )
  )

/** One job, as a line: id, status, progress, name and queue (and why it failed). */
export const lineOf = (job: JobInfo) =>
  `${job.id}  ${job.status.padEnd(9)} ${String(Math.round(job.progress.percent)).padStart(3)}%  ${job.name}  (${job.queue})` +
  (job.errorMessage === null ? "" : `: ${job.errorMessage}`)
export const encodeJob = Schema.encodeSync(JobInfo)
export const printJob = (job: JobInfo, asJson: boolean) => Console.log(asJson ? JSON.stringify(encodeJob(job)) : lineOf(job))

/** Sets the exit code the command ends with (0 unless set). */
export const exitWith = (code: number) => Effect.sync(() => void (process.exitCode = code))
