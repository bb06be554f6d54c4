import { SqlError } from "@effect/sql/SqlError"
import { Cause } from "effect"

/** Node's network errors, and PostgreSQL's SQLSTATEs of a server that is going away or full (class 08 too). */
const connectionCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300" // too_many_connections
])

/** pg's and sql-pg's words for a connection that could not be made, was lost or timed out. */
const connectionMessage = new RegExp(
  [
    "failed to acquire connection",
    "connection terminated",
    "timeout exceeded when trying to connect",
    "connection timed out",
    "connection error",
    "not queryable"
  ].join("|"),
  "i"
)

const isConnectionFailure = (error: unknown, depth = 0): boolean => {
  if (typeof error !== "object" || error === null || depth > 5) return false
  const { cause, code, message } = error as { readonly code?: unknown; readonly message?: unknown; readonly cause?: unknown }
  if (typeof code === "string" && (connectionCodes.has(code) || code.startsWith("08"))) return true
  if (typeof message === "string" && connectionMessage.test(message)) return true
  return isConnectionFailure(cause, depth + 1)
}

/**
 * Whether `cause` holds a `SqlError` (failed or died with) of a database that does not answer: refused, lost or
 * timed-out connections, a server shutting down, or one out of connections. A `SqlError` of a bad statement is not.
 */
export const isDatabaseDown = (cause: Cause.Cause<unknown>): boolean =>
  [...Cause.defects(cause), ...Cause.failures(cause)].some((error) =>
    error instanceof SqlError && isConnectionFailure(error)
  )
