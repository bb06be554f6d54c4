import { Effect } from "effect"
import pg from "pg"
import { databaseUrl } from "./TestDb.js"

/** A plain `pg` connection LISTENing on one channel, recording every payload it receives. */
export const listenOn = (channel: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new pg.Client({ connectionString: databaseUrl() })
      const payloads: Array<string> = []
      client.on("notification", (msg) => {
        if (msg.channel === channel) payloads.push(msg.payload ?? "")
      })
      await client.connect()
      await client.query(`LISTEN "${channel}"`)
      return { client, payloads }
    }),
    ({ client }) => Effect.promise(() => client.end().catch(() => undefined))
  )

/**
 * Waits (in real time, polling every 10 ms, at most `timeoutMs`) until `done` holds for the payloads received.
 * Fails with the payloads seen when it does not.
 */
export const awaitPayloads = (
  payloads: ReadonlyArray<string>,
  done: (payloads: ReadonlyArray<string>) => boolean,
  timeoutMs = 5000
) =>
  Effect.promise(async () => {
    const deadline = Date.now() + timeoutMs
    while (!done(payloads)) {
      if (Date.now() > deadline) return false
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    return true
  }).pipe(
    Effect.flatMap((ok) =>
      ok
        ? Effect.void
        : Effect.die(`timed out; received ${payloads.length} payloads: ${JSON.stringify(payloads).slice(0, 500)}`)
    )
  )

/** The `job_id -> version` pairs carried by doorbell payloads (the reconcile marker `*` excluded). */
export const pairsOf = (payloads: ReadonlyArray<string>): Map<string, number> => {
  const pairs = new Map<string, number>()
  for (const payload of payloads) {
    if (payload === "*") continue
    for (const pair of payload.split(",")) {
      const [id, version] = pair.split(":")
      pairs.set(id!, Math.max(Number(version), pairs.get(id!) ?? 0))
    }
  }
  return pairs
}
