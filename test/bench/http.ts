// `npm run bench -- http`: the HTTP API served by a real Node server on 127.0.0.1 (random port, JWT auth), driven
// by plain `node:http` clients on keep-alive sockets. (1) long-poll latency: from a job's completion call returning
// to the response of a pending `GET /v1/jobs/{id}` with `Prefer: wait=30` having arrived (headers and body),
// beside the in-process `CompletionWatcher.waitFor` measured the same way; 300 samples each, one job at a time,
// the two alternated. (2) throughput of `GET /v1/jobs/{id}/status` with 50 concurrent clients: 20,000 requests a
// round (each round also stops after 60 s), median of 3 rounds with min–max; the load client runs in a worker
// thread, so that the server has this process's event loop to itself.
import { HttpLayerRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Duration, Effect, Fiber, Layer, Option, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import * as NodeHttp from "node:http"
import { Worker } from "node:worker_threads"
import * as Auth from "../../src/Auth.js"
import { CompletionWatcher } from "../../src/CompletionWatcher.js"
import type { JobId } from "../../src/Domain/JobId.js"
import { JobWatchConfig } from "../../src/Config.js"
import { RoutesLive, routerConfig } from "../../src/Http.js"
import { Jobs } from "../../src/Jobs.js"
import { Repos } from "../support/repos.js"
import { Notifications } from "../../src/Notifications.js"
import { median, ms, summarize } from "./stats.js"

const samples = 300
const warmup = 20
const clients = 50
const requestsPerRound = 20_000
const roundLimitMs = 60_000
const rounds = 3
const statusJobs = 1000
const owner = "bench-http"

type Summary = ReturnType<typeof summarize>
interface Round {
  readonly rate: number
  readonly ok: number
  readonly failed: number
  readonly seconds: number
}

/** The load client's code (plain JavaScript, run by a worker thread; answers each `{ total, limitMs }` with a Round). */
const loadClient = `
const { parentPort, workerData } = require("node:worker_threads")
const http = require("node:http")
const { port, authorization, targets, clients } = workerData
const agent = new http.Agent({ keepAlive: true, maxSockets: clients })
const get = (path) => new Promise((resolve) => {
  const request = http.request({ agent, host: "127.0.0.1", port, path, method: "GET", headers: { authorization } }, (response) => {
    response.on("data", () => {})
    response.on("end", () => resolve(response.statusCode === 200))
    response.on("error", () => resolve(false))
  })
  request.on("error", () => resolve(false))
  request.end()
})
parentPort.on("message", async ({ total, limitMs }) => {
  let sent = 0, ok = 0, failed = 0
  const started = performance.now()
  const deadline = started + limitMs
  await Promise.all(Array.from({ length: clients }, async () => {
    while (sent < total && performance.now() < deadline) {
      const id = targets[sent++ % targets.length]
      if (await get("/v1/jobs/" + id + "/status")) ok++
      else failed++
    }
  }))
  const seconds = (performance.now() - started) / 1000
  parentPort.postMessage({ rate: (ok + failed) / seconds, ok, failed, seconds })
})
`

const sleep = (millis: number) => Effect.sleep(Duration.millis(millis))

interface Answer {
  readonly status: number
  readonly body: string
  /** `performance.now()` when the whole response (headers and body) had arrived. */
  readonly at: number
}

/** A GET on `agent`; answers once the body has been read to its end. */
const get = (agent: NodeHttp.Agent, port: number, path: string, headers: Record<string, string>) =>
  new Promise<Answer>((resolve, reject) => {
    const request = NodeHttp.request(
      { agent, host: "127.0.0.1", port, path, method: "GET", headers },
      (response) => {
        const chunks: Array<Buffer> = []
        response.on("data", (chunk: Buffer) => chunks.push(chunk))
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), at: performance.now() }))
        response.on("error", reject)
      }
    )
    request.on("error", reject)
    request.end()
  })

/**
 * The routes with JWT authentication (HS256, `secret`) on a Node server bound to 127.0.0.1, on a free port; the
 * per-user limits off unless `limited` (one user's requests as fast as they go would measure the limits themselves).
 */
export const benchServer = (secret: Uint8Array, limited = false) =>
  HttpLayerRouter.serve(RoutesLive, { disableLogger: true, disableListenLog: true, routerConfig }).pipe(
    Layer.provide(Auth.layerJwt),
    Layer.provide(benchKeys(secret)),
    Layer.provideMerge(NodeHttpServer.layer(NodeHttp.createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provide(limited ? Layer.empty : limitsOff)
  )

/** The bench servers' JWT keys: an HS256 `secret`. */
export const benchKeys = (secret: Uint8Array) =>
  Layer.succeed(Auth.JwtKeysTag, {
    secret: Option.some(Redacted.make(secret)),
    publicKey: Option.none(),
    jwksUrl: Option.none(),
    generated: false
  })

/** The configuration with the per-user limits off (rate and open streams). */
export const limitsOff = Layer.effect(
  JobWatchConfig,
  Effect.map(JobWatchConfig, (config) => ({ ...config, rateLimit: Option.none(), maxStreamsPerUser: Option.none() }))
)

const line = (label: string, s: Summary) =>
  `  ${label.padEnd(12)} p50 ${ms(s.p50).padStart(9)}  p95 ${ms(s.p95).padStart(9)}  p99 ${ms(s.p99).padStart(9)}  max ${
    ms(s.max).padStart(9)
  }  (n=${s.n})`

export const http = (_url: string) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const repo = yield* Repos
    const watcher = yield* CompletionWatcher
    const notifications = yield* Notifications

    const secret = new Uint8Array(randomBytes(48))
    const context = yield* Layer.build(benchServer(secret))
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("the bench server is not on TCP")
    const port = address.port
    const token = yield* Auth.mint(secret, { sub: owner, ttlSeconds: 3600 })
    const authorization = `Bearer ${token}`

    // closed before the server (finalizers run in reverse): idle keep-alive sockets do not hold its shutdown
    const pollAgent = new NodeHttp.Agent({ keepAlive: true, maxSockets: 1 })
    yield* Effect.addFinalizer(() => Effect.sync(() => pollAgent.destroy()))

    /** `n` jobs of `owner`, claimed and started (running), ready to be completed. */
    const running = (n: number) =>
      Effect.gen(function*() {
        const queue = `http-${Math.random().toString(36).slice(2)}`
        const ids: Array<JobId> = []
        for (let i = 0; i < n; i += 1000) {
          yield* jobs.enqueueBatch(Array.from({ length: Math.min(1000, n - i) }, () => ({ name: "bench", queue, owner })))
          const claimed = yield* repo.claim({ workerId: "bench", queues: [queue], limit: 1000, leaseMs: 600_000 })
          yield* Effect.forEach(claimed, (job) => repo.start(job.id), { concurrency: 10, discard: true })
          ids.push(...claimed.map((job) => job.id))
        }
        return ids
      })

    /** Waits (up to 4 s) until the Notifications have read `count` more jobs than `before`: a waiter registered. */
    const registered = (before: number, count = 1) =>
      Effect.gen(function*() {
        for (let i = 0; i < 2000 && (yield* notifications.stats).jobsRead - before < count; i++) yield* sleep(2)
      })

    let unexpected = 0
    /** Samples answered before the completion call returned (counted as 0). */
    const early = { http: 0, inProcess: 0 }
    /** One long-poll sample: the GET pending on a running job, the job completed, the answer's arrival. */
    const httpSample = (id: JobId) =>
      Effect.gen(function*() {
        const before = (yield* notifications.stats).jobsRead
        const pending = get(pollAgent, port, `/v1/jobs/${id}`, { authorization, prefer: "wait=30" })
        yield* registered(before)
        yield* repo.complete(id, { resultJson: "true" })
        const returned = performance.now()
        const answer = yield* Effect.promise(() => pending)
        if (answer.status !== 200 || !answer.body.includes(`"completed"`)) unexpected++
        if (answer.at < returned) early.http++
        return Math.max(0, answer.at - returned)
      })

    /** The same with an in-process `CompletionWatcher.waitFor`. */
    const inProcessSample = (id: JobId) =>
      Effect.gen(function*() {
        const before = (yield* notifications.stats).jobsRead
        let resolved = 0
        const fiber = yield* Effect.fork(
          watcher.waitFor(id).pipe(Effect.tap(() => Effect.sync(() => (resolved = performance.now()))))
        )
        yield* registered(before)
        yield* repo.complete(id, { resultJson: "true" })
        const returned = performance.now()
        yield* Fiber.join(fiber)
        if (resolved < returned) early.inProcess++
        return Math.max(0, resolved - returned)
      })

    const longPoll = (n: number) =>
      Effect.gen(function*() {
        const ids = yield* running(2 * n)
        const overHttp: Array<number> = []
        const inProcess: Array<number> = []
        for (let i = 0; i < n; i++) {
          overHttp.push(yield* httpSample(ids[2 * i]!))
          inProcess.push(yield* inProcessSample(ids[2 * i + 1]!))
        }
        return { overHttp: summarize(overHttp), inProcess: summarize(inProcess) }
      })

    // the status targets: half completed, half still running
    const targets = yield* running(statusJobs)
    yield* Effect.forEach(targets.slice(0, statusJobs / 2), (id) => repo.complete(id, { resultJson: "true" }), {
      concurrency: 10,
      discard: true
    })

    /**
     * The load client, in a worker thread of its own so that it does not compete with the server for this event
     * loop: `clients` loops on one keep-alive agent, each GETting a status at a time until `total` were sent (or
     * the time is up).
     */
    const loader = yield* Effect.acquireRelease(
      Effect.sync(() => new Worker(loadClient, { eval: true, workerData: { port, authorization, targets, clients } })),
      (worker) => Effect.promise(() => worker.terminate())
    )
    const round = (total: number) =>
      Effect.async<Round>((resume) => {
        const onMessage = (result: Round) => {
          loader.off("error", onError)
          resume(Effect.succeed(result))
        }
        const onError = (error: unknown) => {
          loader.off("message", onMessage)
          resume(Effect.die(error))
        }
        loader.once("message", onMessage)
        loader.once("error", onError)
        loader.postMessage({ total, limitMs: roundLimitMs })
        return Effect.sync(() => {
          loader.off("message", onMessage)
          loader.off("error", onError)
        })
      }).pipe(
        Effect.timeoutFail({ duration: Duration.millis(roundLimitMs + 10_000), onTimeout: () => "the load client hung" }),
        Effect.orDie
      )

    // warm up both paths (connections, JIT, the pool)
    yield* longPoll(warmup)
    yield* round(2000)
    unexpected = 0
    early.http = 0
    early.inProcess = 0

    const latency = yield* longPoll(samples)
    const results = []
    for (let r = 0; r < rounds; r++) results.push(yield* round(requestsPerRound))

    console.log(`server: Node HTTP on 127.0.0.1:${port}, JWT (HS256) auth; client: node:http, keep-alive agents (the load in a worker thread)`)
    console.log(`(1) long-poll latency: completion call returned → response arrived, one job at a time`)
    console.log(line("HTTP", latency.overHttp))
    console.log(line("in-process", latency.inProcess))
    console.log(`  HTTP − in-process at p50: ${ms(latency.overHttp.p50 - latency.inProcess.p50)}`)
    if (early.http + early.inProcess > 0) {
      console.log(`  resolved before the completion call returned (counted as 0): HTTP ${early.http}, in-process ${early.inProcess}`)
    }
    if (unexpected > 0) console.log(`  unexpected answers (not 200 with a completed job): ${unexpected}`)
    const rates = results.map((r) => r.rate)
    console.log(
      `(2) GET /v1/jobs/{id}/status, ${clients} concurrent clients, ${requestsPerRound.toLocaleString("en-US")} requests a round`
    )
    console.log(
      `  ${median(rates).toFixed(0)} req/s (median of ${rounds}; min ${Math.min(...rates).toFixed(0)}, max ${
        Math.max(...rates).toFixed(0)
      })  rounds: ${results.map((r) => `${r.rate.toFixed(0)} (${r.seconds.toFixed(2)} s)`).join(", ")}`
    )
    const failures = results.reduce((n, r) => n + r.failed, 0)
    if (failures > 0) console.log(`  failed requests (not 200 or errors): ${failures}`)
  }).pipe(Effect.scoped)
