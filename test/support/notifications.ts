import { Effect } from "effect"
import { randomUUID } from "node:crypto"
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

/** A doorbell payload's items before its outcomes (`#`, pairs and `!` flags; sql/functions/job_events_doorbell.sql). */
export const itemsOf = (payload: string): Array<string> => {
  const bracket = payload.indexOf(",[")
  return (bracket === -1 ? payload : payload.slice(0, bracket)).split(",")
}

/** The outcomes a doorbell payload carries (its JSON array, last), as plain objects. */
export const outcomesOf = (payload: string): Array<Record<string, unknown>> => {
  const bracket = payload.indexOf(",[")
  return bracket === -1 ? [] : JSON.parse(payload.slice(bracket + 1)) as Array<Record<string, unknown>>
}

/** The `job_id -> version` pairs carried by doorbell payloads (the reconcile marker `*` excluded). */
export const pairsOf = (payloads: ReadonlyArray<string>): Map<string, number> => {
  const pairs = new Map<string, number>()
  for (const payload of payloads) {
    if (payload === "*") continue
    for (const pair of itemsOf(payload)) {
      if (pair === "#" || pair.startsWith("!")) continue
      const [id, version] = pair.split(":")
      pairs.set(id!, Math.max(Number(version), pairs.get(id!) ?? 0))
    }
  }
  return pairs
}

/**
 * Everything `listening` has received up to now, for exact assertions ("once", "nothing else"): sends a marker on a
 * channel of its own and waits (at most `timeoutMs`) until it comes back. PostgreSQL delivers notifications in the
 * order their transactions committed, so once the marker is in, so is every notification of every statement that
 * committed before it was sent; none can still be on its way.
 */
export const settled = (
  listening: { readonly client: pg.Client; readonly payloads: ReadonlyArray<string> },
  timeoutMs = 5000
) =>
  Effect.promise(async () => {
    const channel = `jw_settled_${randomUUID().replaceAll("-", "")}`
    let onNotification: (msg: pg.Notification) => void = () => undefined
    const arrived = new Promise<boolean>((resolve) => {
      onNotification = (msg) => {
        if (msg.channel === channel) resolve(true)
      }
      listening.client.on("notification", onNotification)
      setTimeout(() => resolve(false), timeoutMs).unref()
    })
    await listening.client.query(`LISTEN "${channel}"`)
    await listening.client.query("SELECT pg_notify($1, 'marker')", [channel])
    const ok = await arrived
    listening.client.off("notification", onNotification)
    await listening.client.query(`UNLISTEN "${channel}"`)
    return ok ? [...listening.payloads] : undefined
  }).pipe(
    Effect.flatMap((payloads) =>
      payloads === undefined
        ? Effect.die(`the marker did not come back within ${timeoutMs} ms`)
        : Effect.succeed(payloads)
    )
  )
