// The raw-SQL floor of the benchmarks: the least work a PostgreSQL queue can do per job, with `pg` directly, as the
// side-by-side harness's raw-pg driver does it (so that `npm run bench` and the harness compare against one floor):
// - a bare jobs table with a partial index on queued rows; enqueue is one multi-row INSERT per batch of 1,000
//   (`unnest($1::jsonb[])`), and a statement-level trigger NOTIFYs workers once per INSERT;
// - workers claim as many rows as they have free slots in one statement (`UPDATE … FROM (SELECT … FOR UPDATE SKIP
//   LOCKED LIMIT n)`), run the handler, and complete with one statement that UPDATEs the rows, calls pg_notify (sent
//   exactly when the completion commits) and claims jobs for the free slots; jobs that finish while a completion is
//   in flight are coalesced into the next one; idle workers also poll every second;
// - a waiter holds one LISTEN connection and a map id → resolvers, and after registering ids runs one "already
//   finished?" query for them.
// The handler's end is stamped on the machine's monotonic clock (`stamps`), as the harness's worker does: latency
// is measured from there to the waiter, not from the completion call.
import pg from "pg"
import { monotonicMs } from "./stats.js"

const BATCH = 1000
/** NOTIFY payloads stay under 8000 bytes. */
const MAX_IDS_PER_NOTIFY = 500
const IDLE_POLL_MS = 1000

/** The floor's table and channels in `schema`. */
export const rawFloorOf = (schema: string) => ({
  table: `"${schema}".floor_jobs`,
  fresh: `${schema}.floor_new`,
  done: `${schema}.floor_done`
})

/** Creates the floor's table, index and trigger in `schema` (once per bench). */
export const createRawFloor = async (url: string, schema: string) => {
  const { fresh, table } = rawFloorOf(schema)
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  await client.query(`
    CREATE TABLE ${table} (
      id bigserial PRIMARY KEY,
      status smallint NOT NULL DEFAULT 0, -- 0 queued, 1 running, 2 completed, 3 failed
      payload jsonb NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL DEFAULT now(),
      locked_at timestamptz
    );
    CREATE INDEX ON ${table} (id) WHERE status = 0;
    CREATE FUNCTION "${schema}".floor_notify_new() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_notify('${fresh}', ''); RETURN NULL; END $$;
    CREATE TRIGGER floor_new AFTER INSERT ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION "${schema}".floor_notify_new();
  `)
  await client.end()
}

const connect = async (url: string) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  return client
}

/** The floor's client side: enqueue and wait (a pool of 4, one LISTEN connection), as the harness's client. */
export const rawFloorClient = async (url: string, schema: string) => {
  const { done, table } = rawFloorOf(schema)
  const pool = new pg.Pool({ connectionString: url, max: 4 })
  const listener = await connect(url)
  const waiters = new Map<string, Array<(at: number) => void>>()
  const resolve = (id: string, at: number) => {
    const list = waiters.get(id)
    if (list === undefined) return
    waiters.delete(id)
    for (const fn of list) fn(at)
  }
  listener.on("notification", (msg) => {
    const at = monotonicMs()
    const payload = msg.payload ?? ""
    for (const id of payload.slice(payload.indexOf(":") + 1).split(",")) resolve(id, at)
  })
  await listener.query(`LISTEN "${done}"`)
  const enqueueSql = `INSERT INTO ${table} (payload) SELECT p FROM unnest($1::jsonb[]) AS p RETURNING id::text AS id`
  const checkSql = `SELECT id::text AS id FROM ${table} WHERE id = ANY($1::bigint[]) AND status >= 2`
  return {
    /** `count` jobs in batches of 1,000 (payload `{}`); their ids. */
    enqueue: async (count: number) => {
      const ids: Array<string> = []
      for (let done = 0; done < count; done += BATCH) {
        const payloads = new Array<string>(Math.min(BATCH, count - done)).fill("{}")
        const r = await pool.query<{ id: string }>({ name: "floor_enqueue", text: enqueueSql, values: [payloads] })
        for (const row of r.rows) ids.push(row.id)
      }
      return ids
    },
    /**
     * Waits for `ids`: registers them, then checks which finished already; answers when each resolved (monotonic
     * ms). `onArmed` is called once the check is done.
     */
    waitFor: (ids: ReadonlyArray<string>, onArmed?: () => void) =>
      new Promise<ReadonlyMap<string, number>>((resolveAll, reject) => {
        const resolved = new Map<string, number>()
        if (ids.length === 0) return resolveAll(resolved)
        for (const id of ids) {
          const fn = (at: number) => {
            resolved.set(id, at)
            if (resolved.size === ids.length) resolveAll(resolved)
          }
          const list = waiters.get(id)
          if (list === undefined) waiters.set(id, [fn])
          else list.push(fn)
        }
        pool.query<{ id: string }>({ name: "floor_check", text: checkSql, values: [ids] }).then((r) => {
          const at = monotonicMs()
          for (const row of r.rows) resolve(row.id, at)
          onArmed?.()
        }, reject)
      }),
    reset: () => pool.query(`TRUNCATE ${table} RESTART IDENTITY`),
    close: async () => {
      await listener.end().catch(() => undefined)
      await pool.end().catch(() => undefined)
    }
  }
}
export type RawFloorClient = Awaited<ReturnType<typeof rawFloorClient>>

/**
 * The floor's workers: `concurrency` slots over a pool of 4, claiming in batches, completing (and claiming the
 * next jobs) in one statement with its NOTIFY; `handler` runs each job, and its end is stamped in `stamps`.
 */
export const rawFloorWorker = async (
  url: string,
  schema: string,
  concurrency: number,
  handler: (id: string) => Promise<void> | void
) => {
  const { done, fresh, table } = rawFloorOf(schema)
  const pool = new pg.Pool({ connectionString: url, max: 4 })
  const listener = await connect(url)
  const claimSql = `UPDATE ${table} j SET status = 1, locked_at = now()
    FROM (SELECT id FROM ${table} WHERE status = 0 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) c
    WHERE j.id = c.id RETURNING j.id::text AS id`
  // complete (or fail) $1 ids, NOTIFY the waiters and claim up to $2 new jobs, in one statement (one commit)
  const finishSql = (status: 2 | 3) => `WITH done AS (
      UPDATE ${table} SET status = ${status} WHERE id = ANY($1::bigint[]) AND status = 1 RETURNING id
    ), notified AS (
      SELECT pg_notify('${done}', '${status}:' || string_agg(id::text, ',')) FROM done HAVING count(*) > 0
    ), claimed AS (
      UPDATE ${table} j SET status = 1, locked_at = now()
      FROM (SELECT id FROM ${table} WHERE status = 0 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) c
      WHERE j.id = c.id RETURNING j.id
    )
    SELECT (SELECT count(*) FROM notified) AS notified, array(SELECT id::text FROM claimed) AS claimed`
  const completeSql = finishSql(2)
  const failSql = finishSql(3)

  const stamps = new Map<string, number>()
  let running = 0
  let claiming = 0
  let pumping = false
  let wakeAgain = false
  let stopped = false
  let flushing = false
  const buffered = { ok: [] as Array<string>, failed: [] as Array<string> }
  const inFlight = new Set<Promise<unknown>>()
  const free = () => (stopped ? 0 : concurrency - running - claiming)
  const track = <T>(p: Promise<T>): Promise<T> => {
    inFlight.add(p)
    p.finally(() => inFlight.delete(p)).catch(() => undefined)
    return p
  }

  /** A standalone claim: on start, on a new-job NOTIFY, on the idle poll. */
  const pump = () => {
    if (pumping) {
      wakeAgain = true
      return
    }
    const n = free()
    if (n <= 0) return
    pumping = true
    wakeAgain = false
    claiming += n
    track(pool.query<{ id: string }>({ name: "floor_claim", text: claimSql, values: [n] })).then((r) => {
      claiming -= n
      pumping = false
      for (const row of r.rows) run(row.id)
      if (r.rows.length === n || wakeAgain) pump()
    }, (error: unknown) => {
      claiming -= n
      pumping = false
      if (!stopped) console.error("floor claim failed", error)
    })
  }

  const run = (id: string) => {
    running++
    track((async () => {
      let ok = true
      try {
        await handler(id)
      } catch {
        ok = false
      }
      stamps.set(id, monotonicMs())
      running--
      ;(ok ? buffered.ok : buffered.failed).push(id)
      flush()
    })())
  }

  /** Every buffered job in one statement; those that finish while it is in flight wait for the next. */
  const flush = () => {
    if (flushing) return
    const ok = buffered.ok.splice(0, MAX_IDS_PER_NOTIFY)
    const failed = ok.length > 0 ? [] : buffered.failed.splice(0, MAX_IDS_PER_NOTIFY)
    if (ok.length === 0 && failed.length === 0) return
    flushing = true
    const n = Math.max(0, free())
    claiming += n
    const query = ok.length > 0
      ? { name: "floor_complete_claim", text: completeSql, values: [ok, n] }
      : { name: "floor_fail_claim", text: failSql, values: [failed, n] }
    track(pool.query<{ claimed: Array<string> }>(query)).then((r) => {
      claiming -= n
      flushing = false
      const claimed = r.rows[0]?.claimed ?? []
      for (const id of claimed) run(id)
      flush()
      if (n > 0 && claimed.length === n) pump()
    }, (error: unknown) => {
      claiming -= n
      flushing = false
      console.error("floor completion failed", error)
    })
  }

  listener.on("notification", () => pump())
  await listener.query(`LISTEN "${fresh}"`)
  const timer = setInterval(pump, IDLE_POLL_MS)
  pump()
  return {
    /** When each job's handler ended (monotonic ms). */
    stamps,
    /** Stops claiming, lets running handlers finish and their completions land. */
    stop: async () => {
      stopped = true
      clearInterval(timer)
      while (inFlight.size > 0 || buffered.ok.length > 0 || buffered.failed.length > 0) {
        await Promise.allSettled([...inFlight])
        flush()
      }
      await listener.end().catch(() => undefined)
      await pool.end().catch(() => undefined)
    }
  }
}
export type RawFloorWorker = Awaited<ReturnType<typeof rawFloorWorker>>
