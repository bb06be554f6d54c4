import { assert, describe, it, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Duration, Effect } from "effect"
import * as Path from "node:path"
import { JobWatchConfig } from "../src/Config.js"
import type { JobId } from "../src/Domain/JobId.js"
import { Jobs } from "../src/Jobs.js"
import { Workers } from "../src/Workers.js"
import { uniqueQueue } from "./support/fixtures.js"
import { Repos } from "./support/repos.js"
import { sourceFiles } from "./support/sources.js"
import { testLayer } from "./support/workers.js"

/** Files under `dir` as paths from the root, with their text. */
const filesUnder = (dir: string, ext: string) =>
  sourceFiles(dir, ext).map((file) => ({ file: Path.join(dir, file.name), text: file.text }))

/** The functions of sql/functions that write events: each changes a job compare-and-set and writes its event. */
const writers = ["job_attach", "job_bulk", "job_claim", "job_complete_claim", "job_complete_many", "job_enqueue", "job_progress", "job_transition", "task_claim"]

const writesTo = (text: string, table: string) =>
  new RegExp(`(INSERT\\s+INTO|UPDATE|DELETE\\s+FROM)\\s+(\\S*\\.)?"?${table}"?[\\s(]`, "i").test(text)

describe("one writer of the event log", () => {
  it("no TypeScript statement writes job_events or moves a job's version: only the SQL functions do", () => {
    const offenders: Array<string> = []
    for (const { file, text } of filesUnder("src", ".ts")) {
      // the tables a module names through an identifier (`sql(\`${schema}.job_events\`)`)
      const aliases = [...text.matchAll(/const (\w+) = sql\(`\$\{schema\}\.job_events`\)/g)].map((m) => m[1]!)
      const targets = ["job_events", ...aliases.map((alias) => `\\$\\{${alias}\\}`)]
      if (targets.some((target) => writesTo(text, target))) offenders.push(`${file}: writes job_events`)
      if (/version\s*=\s*\w*\.?version\s*\+\s*1/i.test(text)) offenders.push(`${file}: moves a job's version`)
    }
    assert.deepStrictEqual(offenders, [])
  })

  it("in SQL, events are inserted by the writer functions only, each in the file of its one definition", () => {
    const inserting = filesUnder("sql", ".sql").filter(({ text }) => /INSERT\s+INTO\s+job_events\b/i.test(text))
    const live = inserting.filter(({ file }) => file.startsWith(Path.join("sql", "functions")))
    assert.deepStrictEqual(
      live.map(({ file }) => Path.basename(file, ".sql")).sort(),
      writers,
      "the writer functions of sql/functions"
    )
    for (const { file, text } of live) {
      const name = Path.basename(file, ".sql")
      assert.match(text, new RegExp(`CREATE OR REPLACE FUNCTION ${name}\\(`), `${file} defines ${name}`)
      // a new job starts at version 1; every other writer moves the version of the row it locked
      if (name !== "job_enqueue") assert.match(text, /version = (j\.)?version \+ 1/, `${file} moves the version`)
    }
    // the versioned files that insert events are those of before the functions had files of their own
    const versioned = inserting.flatMap(({ file }) => file.startsWith(Path.join("sql", "functions")) ? [] : [file])
    assert.isTrue(versioned.every((file) => Number(Path.basename(file).slice(0, 4)) <= 12), versioned.join(", "))
  })

  layer(testLayer())((it) => {
    it.effect("every path that changes a job writes the event of each of its versions, 1..n, gap-free", () =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const workers = yield* Workers
        const repos = yield* Repos
        const sql = yield* SqlClient.SqlClient
        const { schema } = yield* JobWatchConfig
        const queue = uniqueQueue("writer")
        const later = new Date(Date.now() + 3_600_000)
        const ids: Array<JobId> = []
        const enqueue = (options: { readonly maxAttempts?: number; readonly timeout?: Duration.Duration } = {}) =>
          Effect.tap(jobs.enqueue({ name: "w", queue, ...options }), (ref) => ids.push(ref.id))
        const claimOne = (worker: string) =>
          Effect.map(workers.claim(worker, { queues: [queue] }), (claimed) => claimed[0]!.id)

        // enqueue (single, batch, keyed), claim, start, progress, complete
        yield* enqueue()
        const batch = yield* jobs.enqueueBatch([{ name: "b1", queue }, { name: "b2", queue, idempotencyKey: "k" }])
        ids.push(...batch.map((ref) => ref.id))
        let id = yield* claimOne("w1")
        yield* workers.start(id, { workerId: "w1" })
        yield* workers.progress(id, { percent: 40, force: true }, { workerId: "w1" })
        yield* workers.complete(id, { workerId: "w1", result: { ok: true } })
        // complete many
        const two = [yield* claimOne("w1"), yield* claimOne("w1")]
        yield* workers.completeMany("w1", two.map((job) => ({ id: job, result: 1 })))
        // fail with a retry (to scheduled, promoted when due), then for good
        yield* enqueue({ maxAttempts: 2 })
        id = yield* claimOne("w2")
        yield* workers.fail(id, { workerId: "w2", error: "once" })
        assert.strictEqual((yield* repos.promoteDue(later)).length, 1)
        id = yield* claimOne("w2")
        yield* workers.fail(id, { workerId: "w2", error: "twice" })
        // cancel a pending job, request the cancel of a held one (its worker acknowledges), delete
        yield* Effect.flatMap(enqueue(), (ref) => jobs.cancel(ref.id))
        yield* enqueue()
        id = yield* claimOne("w3")
        yield* jobs.cancel(id)
        yield* workers.canceled(id, { workerId: "w3" })
        yield* Effect.flatMap(enqueue(), (ref) => jobs.delete(ref.id))
        // reap an expired lease (back to pending), time out (retried later), release at shutdown
        yield* enqueue({ maxAttempts: 2 })
        yield* claimOne("w4")
        assert.strictEqual((yield* repos.reapExpiredLeases(later)).length, 1)
        yield* enqueue({ maxAttempts: 2, timeout: Duration.seconds(1) })
        yield* claimOne("w5") // the reaped job (the oldest pending)
        yield* claimOne("w6") // the one with a timeout
        assert.strictEqual((yield* repos.reapTimeouts(later)).length, 1)
        assert.strictEqual((yield* workers.release("w5")).length, 1)

        const rows = yield* sql.unsafe<{ id: string; version: number; versions: ReadonlyArray<number> }>(
          `SELECT j.id, j.version, array_agg(e.version ORDER BY e.version) AS versions
           FROM "${schema}".jobs j JOIN "${schema}".job_events e ON e.job_id = j.id
           WHERE j.queue = $1 GROUP BY j.id, j.version`,
          [queue]
        )
        assert.strictEqual(rows.length, new Set(ids).size)
        for (const row of rows) {
          assert.deepStrictEqual(row.versions, Array.from({ length: row.version }, (_, i) => i + 1), row.id)
        }
        // and every kind of change was made (the statuses its events went through)
        const kinds = yield* sql.unsafe<{ k: string }>(
          `SELECT DISTINCT coalesce(e.previous_status, '-') || '>' || e.status AS k
           FROM "${schema}".job_events e JOIN "${schema}".jobs j ON j.id = e.job_id WHERE j.queue = $1`,
          [queue]
        )
        const seen = new Set(kinds.map((row) => row.k))
        for (const k of ["->pending", "pending>claimed", "claimed>running", "running>running", "running>completed",
          "claimed>completed", "claimed>scheduled", "scheduled>pending", "claimed>failed", "pending>canceled",
          "claimed>claimed", "claimed>canceled", "pending>deleted", "claimed>pending"]) {
          assert.isTrue(seen.has(k), `${k} in ${[...seen].join(" ")}`)
        }
      }))
  })
})
