// `npm run bench -- streams`: push channels by the thousand on one process, the HTTP API served by a real Node
// server on 127.0.0.1 (JWT auth, per-user limits off), its clients in a child process (so that the server's
// memory and event loop are its own). (1) 2,000 per-user SSE streams (`GET /v1/events`, one user): latency from a
// job's completion call returning to the last stream having its `job.completed` event (p50/p99 over the
// completions), the server's memory per idle stream (RSS and heap deltas ÷ streams), the completion call's own
// latency with 0 and with 2,000 streams open, and the queries (pg driver calls of this process) and database
// transactions (`xact_commit`, the whole database: other users count too) in the 11 s after one completion with 0
// and with 2,000 streams open. (2) 5,000 long-polls (`GET /v1/jobs/{id}`, `Prefer: wait=60`) on one job: latency to
// the last answer and memory per long-poll. Every wait is bounded; the child is killed at the end.
import { HttpServer } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Context, Duration, Effect, Layer, Schema } from "effect"
import { clientProcess } from "./clients.js"
import { randomBytes } from "node:crypto"
import pg from "pg"
import * as Auth from "../../src/Auth.js"
import type { JobId } from "../../src/Domain/JobId.js"
import { Jobs } from "../../src/Jobs.js"
import { Notifications } from "../../src/Notifications.js"
import { Repos } from "../support/repos.js"
import { benchServer } from "./http.js"
import { kb, memory, monotonicMs, ms, summarize } from "./stats.js"

const streams = Number(process.env.BENCH_STREAMS ?? 2000)
const polls = Number(process.env.BENCH_POLLS ?? 5000)
const completions = 10
const owner = "bench-streams"
/** Long enough to see a doorbell's held-back re-reads end (they stop after ~10 s). */
const doorbellWindowMs = 11_000

/** The clients (plain JavaScript, run by `node -e`, driven over IPC). */
const clientCode = `
const http = require("node:http")
const now = () => Number(process.hrtime.bigint()) / 1e6
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
let open = []
const seen = new Map()
let target = 0
// opened in waves of 250, within the server's listen backlog
// (a wave is done once its heads arrived, or, with sentOnly, once its requests were sent: a long-poll answers late)
const opened = async (n, path, port, authorization, extra, onBody, sentOnly = false) => {
  const statuses = []
  for (let i = 0; i < n; i += 250) {
    statuses.push(...await openWave(Math.min(250, n - i), path, port, authorization, extra, onBody, sentOnly))
  }
  return statuses
}
const openWave = (n, path, port, authorization, extra, onBody, sentOnly) => Promise.all(Array.from({ length: n }, () =>
  new Promise((resolve) => {
    const request = http.request({ agent, host: "127.0.0.1", port, path, headers: { authorization, ...extra } }, (response) => {
      resolve(response.statusCode)
      onBody(response)
    })
    request.on("error", () => resolve(0))
    if (sentOnly) request.on("finish", () => resolve(200))
    request.end()
    open.push(request)
  })))
process.on("message", async (m) => {
  if (m.cmd === "sse") {
    target = m.n
    const statuses = await opened(m.n, "/v1/events", m.port, m.authorization, { accept: "text/event-stream" }, (response) => {
      let rest = ""
      response.setEncoding("utf8")
      response.on("data", (text) => {
        rest += text
        let end
        while ((end = rest.indexOf("\\n\\n")) >= 0) {
          const message = rest.slice(0, end)
          rest = rest.slice(end + 2)
          if (!message.includes("event: job.completed")) continue
          const at = message.indexOf('"jobId":"')
          const jobId = message.slice(at + 9, at + 45)
          const count = (seen.get(jobId) ?? 0) + 1
          seen.set(jobId, count)
          if (count === target) process.send({ cmd: "seen", jobId, at: now() })
        }
      })
      response.on("error", () => {})
    })
    target = statuses.filter((s) => s === 200).length
    process.send({ cmd: "opened", ok: target })
  } else if (m.cmd === "polls") {
    let answered = 0
    let last = 0
    const statuses = []
    await opened(m.n, "/v1/jobs/" + m.id, m.port, m.authorization, { prefer: "wait=60" }, (response) => {
      response.resume()
      response.on("end", () => {
        statuses.push(response.statusCode)
        last = now()
        if (++answered === m.n) process.send({ cmd: "answered", at: last, ok: statuses.filter((s) => s === 200).length })
      })
      response.on("error", () => {})
    }, true)
    process.send({ cmd: "sent" })
  } else if (m.cmd === "close") {
    for (const request of open) request.destroy()
    open = []
    seen.clear()
    process.send({ cmd: "closed" })
  }
})
`


/** Every query this process sends through the pg driver (the service's pool and its LISTEN connection). */
let queries = 0
const countQueries = Effect.sync(() => {
  const proto = pg.Client.prototype as unknown as { query: (...args: Array<unknown>) => unknown; counted?: boolean }
  if (proto.counted === true) return
  const original = proto.query
  proto.query = function(this: unknown, ...args: Array<unknown>) {
    queries++
    return original.apply(this, args)
  }
  proto.counted = true
})


const XactRows = Schema.Array(Schema.Struct({ commits: Schema.NumberFromString }))

export const streamsBench = (_url: string) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const repo = yield* Repos
    const notifications = yield* Notifications
    const sql = yield* SqlClient.SqlClient
    yield* countQueries
    const secret = new Uint8Array(randomBytes(48))
    const context = yield* Layer.build(benchServer(secret))
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("the bench server is not on TCP")
    const port = address.port
    const authorization = `Bearer ${yield* Auth.mint(secret, { sub: owner, ttlSeconds: 3600 })}`
    const client = yield* clientProcess(clientCode)
    const xactCommits = sql`SELECT xact_commit::text AS commits FROM pg_stat_database WHERE datname = current_database()`
      .pipe(Effect.flatMap(Schema.decodeUnknown(XactRows)), Effect.map((rows) => rows[0]?.commits ?? 0), Effect.orDie)

    /** `n` running jobs of the bench's user. */
    const running = (n: number) =>
      Effect.gen(function*() {
        const queue = `streams-${Math.random().toString(36).slice(2)}`
        yield* jobs.enqueueBatch(Array.from({ length: n }, () => ({ name: "bench", queue, owner })))
        const claimed = yield* repo.claim({ workerId: "bench", queues: [queue], limit: n, leaseMs: 600_000 })
        yield* Effect.forEach(claimed, (job) => repo.start(job.id), { discard: true })
        return claimed.map((job) => job.id)
      })
    const complete = (id: JobId) =>
      Effect.gen(function*() {
        const started = monotonicMs()
        yield* repo.complete(id, { resultJson: "true" })
        const returned = monotonicMs()
        return { returned, call: returned - started }
      })
    /** Queries of this process and the database's commits in the window after one completion. */
    const doorbellCost = (id: JobId) =>
      Effect.gen(function*() {
        const [q0, x0] = [queries, yield* xactCommits]
        yield* complete(id)
        yield* Effect.sleep(Duration.millis(doorbellWindowMs))
        return { queries: queries - q0, commits: (yield* xactCommits) - x0 }
      })
    const callLatency = (ids: ReadonlyArray<JobId>) =>
      Effect.map(Effect.forEach(ids, complete), (samples) => summarize(samples.map((s) => s.call)))

    const ids = yield* running(3 * completions + 4)
    let k = 0
    // 0 streams: the completion call and a doorbell's cost
    const callsIdle = yield* callLatency(ids.slice(k, k += completions))
    const idle = yield* doorbellCost(ids[k++]!)

    const before = memory()
    const openedAt = monotonicMs()
    client.send({ cmd: "sse", n: streams, port, authorization })
    const opened = yield* client.next("opened", 120_000)
    const openMs = monotonicMs() - openedAt
    yield* Effect.sleep(Duration.seconds(2))
    const open = memory()
    console.log(`  ${opened?.ok ?? 0}/${streams} per-user SSE streams open in ${ms(openMs)}`)
    console.log(
      `  memory per idle stream: RSS ${kb((open.rss - before.rss) / streams)}, heap ${kb((open.heap - before.heap) / streams)}`
    )
    const latencies: Array<number> = []
    let missed = 0
    for (let i = 0; i < completions; i++) {
      const id = ids[k++]!
      const { returned } = yield* complete(id)
      const seen = yield* client.next("seen", 30_000)
      if (seen?.at === undefined || seen.jobId !== id) missed++
      else latencies.push(Math.max(0, seen.at - returned))
    }
    const latency = summarize(latencies)
    console.log(
      `  completion → last of ${streams} streams: p50 ${ms(latency.p50)}, p99 ${ms(latency.p99)}, max ${ms(latency.max)}` +
        ` (n=${latency.n}${missed > 0 ? `, ${missed} not seen by all` : ""})`
    )
    const callsBusy = yield* callLatency(ids.slice(k, k += completions))
    console.log(
      `  the completion call: p50 ${ms(callsIdle.p50)} / p99 ${ms(callsIdle.p99)} with 0 streams, ` +
        `p50 ${ms(callsBusy.p50)} / p99 ${ms(callsBusy.p99)} with ${streams}`
    )
    const busy = yield* doorbellCost(ids[k++]!)
    console.log(
      `  one completion, the ${doorbellWindowMs / 1000} s after it: ${idle.queries} queries here / ${idle.commits} database ` +
        `commits with 0 streams; ${busy.queries} / ${busy.commits} with ${streams}`
    )
    client.send({ cmd: "close" })
    yield* client.next("closed")

    // long-polls on one job
    const [target] = yield* running(1)
    const pollBefore = memory()
    const read0 = (yield* notifications.stats).jobsRead
    client.send({ cmd: "polls", n: polls, id: target, port, authorization })
    yield* client.next("sent")
    // every long-poll registered: the notification path has read the job for each, or stopped reading (bounded)
    let [lastRead, still] = [-1, 0]
    for (let i = 0; i < 3000 && still < 100; i++) {
      const read = (yield* notifications.stats).jobsRead - read0
      if (read >= polls) break
      still = read === lastRead ? still + 1 : 0
      lastRead = read
      yield* Effect.sleep(Duration.millis(10))
    }
    const registered = (yield* notifications.stats).jobsRead - read0
    const pollOpen = memory()
    const { returned } = yield* complete(target!)
    const answered = yield* client.next("answered", 60_000)
    console.log(
      `  ${polls} long-polls on one job (${Math.min(registered, polls)} registered): last answered ` +
        `${answered?.at === undefined ? "never (60 s)" : ms(answered.at - returned)} after the completion, ` +
        `${answered?.ok ?? 0} × 200; memory per long-poll: RSS ${kb((pollOpen.rss - pollBefore.rss) / polls)}, ` +
        `heap ${kb((pollOpen.heap - pollBefore.heap) / polls)}`
    )
  })
