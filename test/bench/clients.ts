// The benchmarks' client processes: plain JavaScript run by `node -e` (from the checkout, so that its packages
// resolve), driven over IPC; killed at the end of the scope.
import { Effect } from "effect"
import { spawn } from "node:child_process"

/** A message from a client process: its kind and, as the kind has them, a job, a time and a count. */
export interface ClientMessage {
  readonly cmd: string
  readonly jobId?: string
  readonly at?: number
  readonly ok?: number
}

/** A client process running `code`; `next(cmd)` waits (bounded) for its next message of that kind. */
export const clientProcess = (code: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "inherit", "inherit", "ipc"] })
      const inbox: Array<ClientMessage> = []
      const waiting: Array<() => void> = []
      child.on("message", (m: ClientMessage) => {
        inbox.push(m)
        waiting.splice(0).forEach((wake) => wake())
      })
      const next = (cmd: string, timeoutMs = 60_000) =>
        Effect.promise(() =>
          new Promise<ClientMessage | undefined>((resolve) => {
            const deadline = setTimeout(() => resolve(undefined), timeoutMs)
            const look = () => {
              const i = inbox.findIndex((m) => m.cmd === cmd)
              if (i >= 0) {
                clearTimeout(deadline)
                resolve(inbox.splice(i, 1)[0])
              } else waiting.push(look)
            }
            look()
          })
        )
      return { send: (m: object) => child.send(m), next, child }
    }),
    ({ child }) => Effect.sync(() => child.kill("SIGKILL"))
  )
