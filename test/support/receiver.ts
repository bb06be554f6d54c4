// A webhook receiver on loopback for the tests: it records every request and answers as the test says.
import { Effect } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

export interface Received {
  readonly headers: Record<string, string>
  readonly body: string
  readonly at: number
}

/** How to answer one request: a status (and headers), or `"hang"` (never answer). */
export type Answer = { readonly status: number; readonly headers?: Record<string, string> } | "hang"

/**
 * A receiver answering the i-th request with `answers[i]` (the last one again after that); closed at the end.
 * `until(n)` waits (up to 20 s, really) until it has received `n` requests.
 */
export const receiver = (answers: ReadonlyArray<Answer> = [{ status: 200 }]) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{
        readonly url: string
        readonly received: Array<Received>
        readonly open: () => number
        readonly until: (n: number) => Effect.Effect<ReadonlyArray<Received>, Error>
        readonly close: () => Promise<void>
      }>((resolve) => {
        const received: Array<Received> = []
        const hanging = new Set<Http.ServerResponse>()
        const server = Http.createServer((request, response) => {
          let body = ""
          request.on("data", (chunk) => (body += chunk))
          request.on("end", () => {
            const answer = answers[Math.min(received.length, answers.length - 1)]!
            received.push({ headers: request.headers as Record<string, string>, body, at: performance.now() })
            if (answer === "hang") {
              hanging.add(response)
              response.on("close", () => hanging.delete(response))
              return
            }
            response.writeHead(answer.status, answer.headers ?? {})
            response.end("ok")
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
          resolve({
            url,
            received,
            open: () => hanging.size,
            until: (n) =>
              Effect.gen(function*() {
                for (let i = 0; i < 1000 && received.length < n; i++) {
                  yield* Effect.promise(() => new Promise((r) => setTimeout(r, 20)))
                }
                if (received.length < n) return yield* Effect.fail(new Error(`${received.length} of ${n} requests after 20 s`))
                return received
              }),
            close: () =>
              new Promise<void>((done) => {
                hanging.forEach((r) => r.destroy())
                server.closeAllConnections()
                server.close(() => done())
              })
          })
        })
      })
    ),
    (r) => Effect.promise(() => r.close())
  )
