// `npm run bench -- sockets`: Socket.IO by the thousand on one process (issue 19). The service's server with
// `SocketIo.layer` on 127.0.0.1 (JWT auth, per-user limits off), its clients (`socket.io-client`, websocket
// transport) in a child process, so that the server's memory and event loop are its own. 2,000 sockets of one user,
// each subscribed (`subscribe:job`) to one of 100 running jobs and, as every socket, in its user's room: for each of
// 10 completions, the latency from the completion call returning to the last socket having its event (the user
// room's `job:completed` on all 2,000, and `job:<id>:completed` on the 20 that follow that job); p50/p99 over the
// completions, and the server's memory per idle socket (RSS and heap deltas ÷ sockets). Every wait is bounded; the
// child is killed at the end.
import { HttpLayerRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Duration, Effect, Layer } from "effect"
import { clientProcess } from "./clients.js"
import { benchKeys, limitsOff } from "./http.js"
import { randomBytes } from "node:crypto"
import * as NodeHttp from "node:http"
import * as Auth from "../../src/Auth.js"
import type { JobId } from "../../src/Domain/JobId.js"
import { RoutesLive, routerConfig } from "../../src/Http.js"
import { Jobs } from "../../src/Jobs.js"
import * as SocketIo from "../../src/SocketIo.js"
import { Repos } from "../support/repos.js"
import { kb, memory, monotonicMs, ms, summarize } from "./stats.js"

const sockets = Number(process.env.BENCH_SOCKETS ?? 2000)
const jobsFollowed = 100
const completions = 10
const owner = "bench-sockets"

/** The clients (plain JavaScript, run by `node -e` from the checkout, driven over IPC). */
const clientCode = `
const { io } = require("socket.io-client")
const now = () => Number(process.hrtime.bigint()) / 1e6
let open = []
// per job: the sockets that must see it (all in the user room; those following it on its own channel)
const seenRoom = new Map()
const seenJob = new Map()
let roomTarget = 0
const jobTarget = new Map()
const check = (jobId) => {
  if ((seenRoom.get(jobId) ?? 0) === roomTarget && (seenJob.get(jobId) ?? 0) === (jobTarget.get(jobId) ?? 0)) {
    process.send({ cmd: "seen", jobId, at: now() })
  }
}
const connectOne = (url, token, jobId) => new Promise((resolve) => {
  const socket = io(url, { auth: { token }, transports: ["websocket"], reconnection: false, forceNew: true, timeout: 30000 })
  open.push(socket)
  socket.on("job:completed", (data) => {
    seenRoom.set(data.jobId, (seenRoom.get(data.jobId) ?? 0) + 1)
    check(data.jobId)
  })
  socket.on("job:" + jobId + ":completed", () => {
    seenJob.set(jobId, (seenJob.get(jobId) ?? 0) + 1)
    check(jobId)
  })
  socket.once("connect_error", () => resolve(false))
  socket.once("connect", () => {
    socket.timeout(30000).emitWithAck("subscribe:job", jobId).then((ack) => resolve(ack.ok === true), () => resolve(false))
  })
})
process.on("message", async (m) => {
  if (m.cmd === "connect") {
    let ok = 0
    // in waves of 200, within the server's listen backlog
    for (let i = 0; i < m.n; i += 200) {
      const wave = []
      for (let j = i; j < Math.min(m.n, i + 200); j++) wave.push(connectOne(m.url, m.token, m.jobs[j % m.jobs.length]))
      ok += (await Promise.all(wave)).filter(Boolean).length
    }
    roomTarget = ok
    for (let j = 0; j < m.n; j++) {
      const id = m.jobs[j % m.jobs.length]
      jobTarget.set(id, (jobTarget.get(id) ?? 0) + 1)
    }
    process.send({ cmd: "opened", ok })
  } else if (m.cmd === "close") {
    for (const socket of open) socket.close()
    open = []
    process.send({ cmd: "closed" })
  }
})
`



/** The service's routes and Socket.IO on a server of this process, on 127.0.0.1, per-user limits off. */
const socketServer = (secret: Uint8Array) => {
  const server = NodeHttp.createServer()
  return Layer.mergeAll(
    HttpLayerRouter.serve(RoutesLive, { disableLogger: true, disableListenLog: true, routerConfig }),
    SocketIo.layer(server)
  ).pipe(
    Layer.provide(Auth.layerJwt),
    Layer.provide(benchKeys(secret)),
    Layer.provideMerge(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" })),
    Layer.provide(limitsOff)
  )
}

/** `n` running jobs of the bench's user. */
const runningJobs = (n: number) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const repo = yield* Repos
    const queue = `sockets-${Math.random().toString(36).slice(2)}`
    yield* jobs.enqueueBatch(Array.from({ length: n }, () => ({ name: "bench", queue, owner })))
    const claimed = yield* repo.claim({ workerId: "bench", queues: [queue], limit: n, leaseMs: 600_000 })
    yield* Effect.forEach(claimed, (job) => repo.start(job.id), { discard: true })
    return claimed.map((job) => job.id as JobId)
  })

export const socketsBench = (_url: string) =>
  Effect.gen(function*() {
    const repo = yield* Repos
    const secret = new Uint8Array(randomBytes(48))
    const context = yield* Layer.build(socketServer(secret))
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("the bench server is not on TCP")
    const url = `http://127.0.0.1:${address.port}`
    const token = yield* Auth.mint(secret, { sub: owner, ttlSeconds: 3600 })
    const ids = yield* runningJobs(jobsFollowed)
    const client = yield* clientProcess(clientCode)

    const before = memory()
    const openedAt = monotonicMs()
    client.send({ cmd: "connect", n: sockets, url, token, jobs: ids })
    const opened = yield* client.next("opened", 180_000)
    const openMs = monotonicMs() - openedAt
    yield* Effect.sleep(Duration.seconds(2))
    const open = memory()
    console.log(`  ${opened?.ok ?? 0}/${sockets} sockets connected and subscribed (one of ${jobsFollowed} jobs each) in ${ms(openMs)}`)
    console.log(
      `  memory per idle socket: RSS ${kb((open.rss - before.rss) / sockets)}, heap ${kb((open.heap - before.heap) / sockets)}`
    )
    const latencies: Array<number> = []
    let missed = 0
    for (let i = 0; i < completions; i++) {
      const id = ids[i]!
      yield* repo.complete(id, { resultJson: "true" })
      const returned = monotonicMs()
      const seen = yield* client.next("seen", 30_000)
      if (seen?.at === undefined || seen.jobId !== id) missed++
      else latencies.push(Math.max(0, seen.at - returned))
    }
    const latency = summarize(latencies)
    console.log(
      `  completion → last of ${sockets} sockets (user room on all, the job's channel on ${sockets / jobsFollowed}): ` +
        `p50 ${ms(latency.p50)}, p99 ${ms(latency.p99)}, max ${ms(latency.max)} (n=${latency.n}` +
        `${missed > 0 ? `, ${missed} not seen by all` : ""}); target p99 ≤ 250 ms, ≤ 60 KB per idle socket`
    )
    client.send({ cmd: "close" })
    yield* client.next("closed")
  })
