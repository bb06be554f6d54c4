import { HttpApiSchema } from "@effect/platform"
import { Context, Either, Schema } from "effect"

/** The roles a caller may hold besides being a user: `admin` sees every job, `worker` may claim and report. */
export const Role = Schema.Literal("admin", "worker")
export type Role = typeof Role.Type

/** Who is calling: `sub` owns the jobs it enqueues. */
export class User extends Schema.Class<User>("User")({
  sub: Schema.String,
  roles: Schema.Array(Role)
}) {
  get isAdmin(): boolean {
    return this.roles.includes("admin")
  }
  /** May act as a worker (claim, heartbeat, report, end jobs). */
  get isWorker(): boolean {
    return this.roles.includes("worker") || this.isAdmin
  }
  /** The owner the caller's job operations are restricted to: none for an admin. */
  get ownerScope(): string | undefined {
    return this.isAdmin ? undefined : this.sub
  }
  /**
   * Whether the caller may act as worker `workerId`: a worker as its `sub` or as `<sub>:<anything>` (one machine's
   * token running several workers); an admin as every worker.
   */
  mayActAs(workerId: string): boolean {
    return this.isAdmin || (this.isWorker && this.owns(workerId))
  }
  /** Whether `workerId` is one of the caller's own: its `sub`, or `<sub>:<anything>`. */
  owns(workerId: string): boolean {
    return workerId === this.sub || workerId.startsWith(`${this.sub}:`)
  }
}

/** The authenticated caller of the current request (provided by the `Authentication` middleware). */
export class CurrentUser extends Context.Tag("jobwatch/CurrentUser")<CurrentUser, User>() {}

/** No credentials, or credentials that are malformed, forged or expired. HTTP 401. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 401, description: "Missing, malformed, forged or expired credentials" })
) {}

/**
 * Authenticated, but without the role this needs, or acting as a worker id the token may not use (`workerIds`
 * then lists the ones it may: `<sub>` and `<sub>:*`). HTTP 403.
 */
export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  { message: Schema.String, required: Role, workerIds: Schema.optional(Schema.Array(Schema.String)) },
  HttpApiSchema.annotations({ status: 403, description: "The caller lacks the role this needs, or may not act as this worker" })
) {}

/**
 * The one rule of the worker operations: the caller holds the `worker` role (or `admin`), and, when it acts as
 * worker `workerId`, may use that id (`User.mayActAs`). `Forbidden` otherwise. With `role: false` (the job
 * library, whose workers are its users' own clients) no role is needed: the id must be the caller's own.
 */
export const checkWorker = (
  user: User,
  workerId?: string,
  options: { readonly role?: boolean } = {}
): Either.Either<void, Forbidden> => {
  const role = options.role ?? true
  if (role && !user.isWorker) return Either.left(new Forbidden({ message: "this needs the worker role", required: "worker" }))
  if (workerId === undefined || user.isAdmin || ((!role || user.isWorker) && user.owns(workerId))) return Either.right(undefined)
  return Either.left(
    new Forbidden({
      message: `this token may act only as worker ${JSON.stringify(user.sub)} or ${JSON.stringify(`${user.sub}:<name>`)}, ` +
        `not as ${JSON.stringify(workerId.length > 60 ? `${workerId.slice(0, 57)}...` : workerId)}`,
      required: "admin",
      workerIds: [user.sub, `${user.sub}:*`]
    })
  )
}
