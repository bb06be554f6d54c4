import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql"
import { Effect, Schema } from "effect"
import { JobWatchConfig } from "../Config.js"
import { WorkerNotFound } from "../Domain/Errors.js"
import { GLOBAL_ROOM } from "../Domain/JobLib.js"
import type { ClaimedRow } from "../Workers/ClaimsRepo.js"
import { claimedColumns, claimedRows } from "../Workers/ClaimsRepo.js"

/** A job type's row, as the reads answer it. */
export const JobTypeRow = Schema.Struct({
  id: Schema.Number,
  room: Schema.String,
  name: Schema.String,
  visibility: Schema.Literal("public", "private"),
  category: Schema.String,
  shortName: Schema.String,
  scopeOwner: Schema.String,
  schema: Schema.Unknown,
  schemaDigest: Schema.String,
  maxAttempts: Schema.Number,
  registeredBy: Schema.NullOr(Schema.String),
  workers: Schema.Number,
  createdAt: Schema.DateFromSelf,
  updatedAt: Schema.DateFromSelf
})
export type JobTypeRow = typeof JobTypeRow.Type
const decodeRows = Schema.decodeUnknown(Schema.Array(JobTypeRow))
const decodeTotal = Schema.decodeUnknown(Schema.Tuple(Schema.Struct({ total: Schema.Number })))

const RegisterRow = Schema.Struct({
  id: Schema.NullOr(Schema.Number),
  outcome: Schema.Literal("created", "revived", "existing", "conflict", "limit"),
  schemaDigest: Schema.NullOr(Schema.String)
})
const decodeRegister = Schema.decodeUnknown(Schema.Tuple(RegisterRow))
const decodeIds = Schema.decodeUnknown(Schema.Array(Schema.Struct({ id: Schema.Number })))

export interface Registration {
  readonly room: string
  readonly name: string
  readonly visibility: "public" | "private"
  readonly category: string
  readonly shortName: string
  /** The registrant's `sub`: the owner of a private type. */
  readonly registeredBy: string
  readonly schema: object
  readonly schemaDigest: string
  readonly maxAttempts: number
  readonly workerId: string
  readonly heartbeatMs: number
  readonly leaseMs: number
  /** The most live types one registrant may have. */
  readonly maxTypes: number
}

/**
 * Who looks: `sub` sees the public types and its own private ones; an admin (`admin`) sees every type.
 */
export interface Viewer {
  readonly sub: string
  readonly admin: boolean
}

/** The SQL of the job library: job types, their workers, the task claim. `SqlError`s are defects here. */
export class JobTypesRepo extends Effect.Service<JobTypesRepo>()("jobwatch/JobTypesRepo", {
  effect: Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const { schema } = yield* JobWatchConfig
    const types = sql(`${schema}.job_types`)
    const links = sql(`${schema}.job_type_workers`)
    const registerFunction = sql(`${schema}.job_type_register`)
    const claimFunction = sql(`${schema}.task_claim`)

    const columns = sql`t.id::float8 AS id, t.room, t.name, t.visibility, t.category, t.short_name AS "shortName",
      t.scope_owner AS "scopeOwner", t.schema, t.schema_digest AS "schemaDigest", t.max_attempts AS "maxAttempts",
      t.registered_by AS "registeredBy",
      (SELECT count(*)::int FROM ${links} l WHERE l.job_type_id = t.id) AS workers,
      t.created_at AS "createdAt", t.updated_at AS "updatedAt"`
    /** The types a room has: its own and `@global`'s (only `@global`'s for `@global`), live, that `viewer` may see. */
    const visibleIn = (room: string, viewer: Viewer) =>
      sql`t.deleted_at IS NULL AND t.room IN (${room}, ${GLOBAL_ROOM}) ${
        viewer.admin ? sql`` : sql`AND (t.visibility = 'public' OR t.scope_owner = ${viewer.sub})`
      }`

    /** Registers (or revives, or links a worker to) a type, atomically; 'conflict' when its schema differs. */
    const register = (r: Registration) =>
      sql`SELECT id::float8 AS id, outcome, schema_digest AS "schemaDigest" FROM ${registerFunction}(
          ${r.room}, ${r.name}, ${r.visibility}, ${r.category}, ${r.shortName},
          ${r.visibility === "private" ? r.registeredBy : ""}, ${JSON.stringify(r.schema)}::jsonb, ${r.schemaDigest},
          ${r.maxAttempts}::int, ${r.registeredBy}, ${r.workerId}, ${r.heartbeatMs}::int, ${r.leaseMs}::int,
          ${r.maxTypes}::int, NULL::timestamptz)`.pipe(
        Effect.flatMap(decodeRegister),
        Effect.map(([row]) => row),
        Effect.orDie
      )

    /** A page of the types of `room`, ordered by room (the room's first) then name; with their total. */
    const list = (room: string, viewer: Viewer, limit: number, offset: number) =>
      Effect.all({
        items: sql`SELECT ${columns} FROM ${types} t WHERE ${visibleIn(room, viewer)}
          ORDER BY t.room = ${GLOBAL_ROOM}, t.name, t.id LIMIT ${limit} OFFSET ${offset}`.pipe(Effect.flatMap(decodeRows)),
        total: sql`SELECT count(*)::int AS total FROM ${types} t WHERE ${visibleIn(room, viewer)}`.pipe(
          Effect.flatMap(decodeTotal),
          Effect.map(([row]) => row.total)
        )
      }, { concurrency: 2 }).pipe(Effect.orDie)

    /**
     * Type `name` as room `room` has it: the room's own first, else `@global`'s; a private one only when it is the
     * viewer's (an admin's: anyone's, its own first).
     */
    const find = (room: string, name: string, viewer: Viewer) =>
      sql`SELECT ${columns} FROM ${types} t WHERE ${visibleIn(room, viewer)} AND t.name = ${name}
          ORDER BY t.room = ${GLOBAL_ROOM}, t.scope_owner <> ${viewer.sub} LIMIT 1`.pipe(
        Effect.flatMap(decodeRows),
        Effect.map((rows) => rows[0]),
        Effect.orDie
      )

    /** Type `id`, removed or not. */
    const byId = (id: number) =>
      sql`SELECT ${columns} FROM ${types} t WHERE t.id = ${id}`.pipe(
        Effect.flatMap(decodeRows),
        Effect.map((rows) => rows[0]),
        Effect.orDie
      )

    /** Whether worker `workerId` served type `id` (it no longer does). */
    const unlink = (id: number, workerId: string) =>
      sql`DELETE FROM ${links} WHERE job_type_id = ${id} AND worker_id = ${workerId} RETURNING 1 AS one`.pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.orDie
      )

    /** Claims up to `limit` tasks of the types `workerId` serves (in `rooms`); `WorkerNotFound` for an unknown one. */
    const claim = (options: {
      readonly workerId: string
      readonly rooms: ReadonlyArray<string> | undefined
      readonly limit: number
      readonly leaseMs: number
      readonly heartbeatMs: number
      readonly now: Date
    }): Effect.Effect<ReadonlyArray<ClaimedRow>, WorkerNotFound> =>
      sql`SELECT ${sql.literal(claimedColumns)}
          FROM ${claimFunction}(${options.workerId}::text, ${options.rooms ?? null}::text[], ${options.limit}::int,
            ${options.leaseMs}::int, ${options.heartbeatMs}::int, ${options.now}::timestamptz, false) j
          ORDER BY j.priority DESC, j.id`.pipe(
        Effect.map(claimedRows),
        Effect.catchTag("SqlError", (error: SqlError.SqlError) =>
          codeOf(error) === "P0002" ? new WorkerNotFound({ workerId: options.workerId }) : Effect.die(error))
      )

    /** The ready keys of the types `workerId` serves (`@type:<id>`, as the doorbell sends them). */
    const servedKeys = (workerId: string) =>
      sql`SELECT job_type_id::float8 AS id FROM ${links} WHERE worker_id = ${workerId}`.pipe(
        Effect.flatMap(decodeIds),
        Effect.map((rows) => new Set(rows.map((row) => `@type:${row.id}`))),
        Effect.orDie
      )

    return { register, list, find, byId, unlink, claim, servedKeys } as const
  })
}) {}

/** The SQLSTATE of a failed statement, when the driver gave one. */
const codeOf = (error: SqlError.SqlError): string | undefined => {
  const cause: unknown = error.cause
  return typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string" ? cause.code : undefined
}
