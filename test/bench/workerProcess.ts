// The parent's handle on the benchmarks' worker process (`benchWorker.ts`): start workers of either kind, stop them
// and get their handlers' end stamps. A worker process that exits early fails whatever waits on it.
import { Effect } from "effect"
import { fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import type { Reply, Request, StartRequest } from "./benchWorker.js"

export type WorkerStart = Omit<StartRequest, "op">

export const workerProcess = (url: string, schema: string) =>
  Effect.gen(function*() {
    const replies: Array<(reply: Reply) => void> = []
    let exited: ((code: number | null) => void) | undefined
    const child = yield* Effect.acquireRelease(
      Effect.async<ReturnType<typeof fork>>((resume) => {
        const child = fork(fileURLToPath(new URL("./benchWorker.ts", import.meta.url)), [url, schema], {
          execArgv: ["--import", "tsx"],
          stdio: ["ignore", "inherit", "inherit", "ipc"]
        })
        exited = (code) => resume(Effect.die(new Error(`the bench worker exited (${code}) before it was ready`)))
        child.once("exit", (code) => exited?.(code))
        child.once("message", () => {
          child.on("message", (reply: Reply) => replies.shift()?.(reply))
          resume(Effect.succeed(child))
        })
      }),
      (child) =>
        child.exitCode !== null || child.signalCode !== null
          ? Effect.void
          : Effect.async<void>((resume) => {
            exited = () => resume(Effect.void)
            child.send({ op: "exit" } satisfies Request)
          })
    )
    const ask = (request: Request) =>
      Effect.async<Reply>((resume) => {
        exited = (code) => resume(Effect.die(new Error(`the bench worker exited (${code})`)))
        replies.push((reply) => resume(Effect.succeed(reply)))
        child.send(request)
      })
    return {
      /** Starts workers; answers once they run. */
      start: (options: WorkerStart) => Effect.asVoid(ask({ op: "start", ...options })),
      /** Stops them gracefully; answers when each job's handler ended (monotonic ms). */
      stop: Effect.map(ask({ op: "stop" }), (reply) => new Map(Object.entries(reply.op === "stopped" ? reply.stamps : {})))
    }
  })
