// `npm run bench -- limits`: what one user can take from the others, with the per-user limits off and on (their
// defaults: 100 open streams and waits, 50 requests/s with bursts of 200), on a real Node server on 127.0.0.1.
// (1) one user opens 1,000 `/v1/events` streams; then another user's 5 enqueues, one after the other, are timed.
// (2) one user opens 2,000 long-polls (`Prefer: wait=60`): how many the server holds, and the process's memory.
// Every stream and poll is closed by the client at the end of its scenario.
import { HttpServer } from "@effect/platform"
import { Context, Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import * as NodeHttp from "node:http"
import * as Auth from "../../src/Auth.js"
import { Jobs } from "../../src/Jobs.js"
import { benchServer } from "./http.js"

const streams = 1000
const polls = 2000

/** Opens a request and resolves with its status once the head arrived; the response stays open until `agent` goes. */
const open = (port: number, agent: NodeHttp.Agent, path: string, headers: Record<string, string>) =>
  new Promise<number>((resolve) => {
    const request = NodeHttp.request({ host: "127.0.0.1", port, path, agent, headers }, (response) => {
      response.resume()
      resolve(response.statusCode ?? 0)
    })
    request.on("error", () => resolve(0))
    request.end()
  })

const call = (port: number, path: string, bearer: string, body: unknown) =>
  new Promise<number>((resolve) => {
    const text = JSON.stringify(body)
    const request = NodeHttp.request({
      host: "127.0.0.1",
      port,
      path,
      method: "POST",
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json", "content-length": Buffer.byteLength(text) }
    }, (response) => {
      response.resume()
      response.on("end", () => resolve(response.statusCode ?? 0))
    })
    request.on("error", () => resolve(0))
    request.end(text)
  })

const count = (statuses: ReadonlyArray<number>) => {
  const by = new Map<number, number>()
  for (const status of statuses) by.set(status, (by.get(status) ?? 0) + 1)
  return [...by].sort(([a], [b]) => a - b).map(([status, n]) => `${n} × ${status}`).join(", ")
}

/** The heap in use after a collection (`--expose-gc`, as `npm run bench` runs), in MiB. */
const heapMb = () => {
  globalThis.gc?.()
  return process.memoryUsage().heapUsed / 1024 / 1024
}

/** Waits until `size()` stopped growing for a second (or 30 s passed). */
const settled = (size: () => number) =>
  Effect.promise(async () => {
    let last = -1
    for (let i = 0; i < 30 && size() !== last; i++) {
      last = size()
      await new Promise((resolve) => setTimeout(resolve, 1000))
    }
  })

export const limits = (_url: string) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const secret = new Uint8Array(randomBytes(48))
    const flooder = yield* Auth.mint(secret, { sub: "bench-flood", ttlSeconds: 3600 })
    const bystander = yield* Auth.mint(secret, { sub: "bench-bystander", ttlSeconds: 3600 })
    const held = yield* jobs.enqueue({ name: "held", owner: "bench-flood", queue: `limits-${Date.now()}` })
    for (const limited of [false, true]) {
      yield* Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(benchServer(secret, limited))
        const address = Context.get(context, HttpServer.HttpServer).address
        if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("the bench server is not on TCP")
        const port = address.port
        console.log(limited ? "limits on (defaults)" : "limits off")

        const streamAgent = new NodeHttp.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY })
        yield* Effect.addFinalizer(() => Effect.sync(() => streamAgent.destroy()))
        const opened = yield* Effect.promise(() =>
          Promise.all(Array.from({ length: streams }, () =>
            open(port, streamAgent, "/v1/events", { authorization: `Bearer ${flooder}` })))
        )
        const times: Array<number> = []
        for (let i = 0; i < 5; i++) {
          const started = performance.now()
          const status = yield* Effect.promise(() => call(port, "/v1/jobs", bystander, { name: "bystander" }))
          times.push(performance.now() - started)
          if (status !== 201) console.log(`  bystander enqueue answered ${status}`)
        }
        console.log(`  ${streams} streams of one user: ${count(opened)}; another user's 5 enqueues took ` +
          `${times.reduce((a, b) => a + b, 0).toFixed(0)} ms (${times.map((t) => t.toFixed(0)).join(", ")})`)
        streamAgent.destroy()
        yield* Effect.sleep("1 second")

        const before = heapMb()
        const pollAgent = new NodeHttp.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY })
        yield* Effect.addFinalizer(() => Effect.sync(() => pollAgent.destroy()))
        // a long-poll's head comes with its answer: those over the limit answer at once, the held ones not
        const answered: Array<number> = []
        for (let i = 0; i < polls; i++) {
          void open(port, pollAgent, `/v1/jobs/${held.id}`, { authorization: `Bearer ${flooder}`, prefer: "wait=60" })
            .then((status) => void answered.push(status))
        }
        yield* settled(() => answered.length)
        const after = heapMb()
        console.log(`  ${polls} long-polls of one user: ${answered.length} answered at once (${count(answered)}), ` +
          `${polls - answered.length} held; heap ${before.toFixed(0)} → ${after.toFixed(0)} MiB (${after >= before ? "+" : ""}${(after - before).toFixed(0)})`)
        pollAgent.destroy()
      }))
    }
  })
