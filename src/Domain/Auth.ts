import { HttpApiSchema } from "@effect/platform"
import { Context, Schema } from "effect"

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
}

/** The authenticated caller of the current request (provided by the `Authentication` middleware). */
export class CurrentUser extends Context.Tag("jobwatch/CurrentUser")<CurrentUser, User>() {}

/** No credentials, or credentials that are malformed, forged or expired. HTTP 401. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 401, description: "Missing, malformed, forged or expired credentials" })
) {}

/** Authenticated, but without the role this needs. HTTP 403. */
export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  { message: Schema.String, required: Role },
  HttpApiSchema.annotations({ status: 403, description: "The caller lacks the role this needs" })
) {}
