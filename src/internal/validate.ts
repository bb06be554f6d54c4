import { DateTime, Duration, Effect, Option, Schema } from "effect"
import { InvalidInput, PayloadTooLarge } from "../Domain/Errors.js"
import { JobId } from "../Domain/JobId.js"
import { parseDuration } from "../Config.js"

export type Invalid = InvalidInput | PayloadTooLarge

export const invalid = (field: string, message: string) => Effect.fail(new InvalidInput({ field, message }))

const isJobId = Schema.is(JobId)

/** A job id from outside: a UUID, or `InvalidInput` naming `field`. */
export const jobId = (value: unknown, field = "id"): Effect.Effect<JobId, InvalidInput> =>
  typeof value === "string" && isJobId(value.toLowerCase())
    ? Effect.succeed(JobId.make(value.toLowerCase()))
    : invalid(field, `must be a UUID, got ${preview(value)}`)

export const preview = (value: unknown): string => {
  const text = typeof value === "string" ? JSON.stringify(value) : String(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

// PostgreSQL text cannot hold NUL; jsonb cannot hold \u0000 or a lone surrogate (JSON.stringify escapes those)
const nul = /\u0000/
const badJsonEscape = /(?:^|[^\\])(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i

/** A text field: a string of `min`–`max` characters, no NUL, not blank. */
export const text = (
  field: string,
  value: unknown,
  options: { readonly min?: number; readonly max: number }
): Effect.Effect<string, InvalidInput> => {
  if (typeof value !== "string") return invalid(field, `must be a string, got ${preview(value)}`)
  const min = options.min ?? 1
  if (value.length < min || (min > 0 && value.trim() === "")) {
    return invalid(field, min === 1 ? "must not be empty" : `must have at least ${min} characters`)
  }
  if (value.length > options.max) return invalid(field, `must have at most ${options.max} characters, got ${value.length}`)
  if (nul.test(value)) return invalid(field, "must not contain NUL characters")
  return Effect.succeed(value)
}

export const optionalText = (field: string, value: unknown, max: number): Effect.Effect<string | null, InvalidInput> =>
  value === undefined || value === null ? Effect.succeed(null) : text(field, value, { max })

export const integer = (
  field: string,
  value: unknown,
  min: number,
  max: number
): Effect.Effect<number, InvalidInput> =>
  typeof value === "number" && Number.isInteger(value) && value >= min && value <= max
    ? Effect.succeed(value)
    : invalid(field, `must be an integer from ${min} to ${max}, got ${preview(value)}`)

/** Any JSON value, serialised, within `limit` bytes and storable in jsonb. */
export const jsonValue = (field: string, value: unknown, limit: number): Effect.Effect<string, Invalid> => {
  let json: string | undefined
  try {
    json = JSON.stringify(value === undefined ? null : value)
  } catch (e) {
    return invalid(field, `must be JSON-serialisable: ${e instanceof Error ? e.message : String(e)}`)
  }
  if (json === undefined) return invalid(field, "must be a JSON value")
  // a JS string has at most 3 UTF-8 bytes per UTF-16 unit: measure only when it could be over
  const size = json.length * 3 > limit ? Buffer.byteLength(json) : json.length
  if (size > limit) return Effect.fail(new PayloadTooLarge({ field, size, limit }))
  if (badJsonEscape.test(json)) {
    return invalid(field, "must not contain \\u0000 or unpaired surrogates (PostgreSQL jsonb cannot store them)")
  }
  return Effect.succeed(json)
}

/** A duration (`DurationInput` or `"5 seconds"`/`"250ms"`), finite and at least `minMs`. */
export const duration = (field: string, value: unknown, minMs = 0): Effect.Effect<number, InvalidInput> =>
  Option.match(parseDuration(value), {
    onNone: () => invalid(field, `must be a duration, got ${preview(value)}`),
    onSome: (d) => {
      const ms = Duration.toMillis(d)
      return Number.isFinite(ms) && ms >= minMs
        ? Effect.succeed(ms)
        : invalid(field, `must be a finite duration of at least ${minMs} ms`)
    }
  })

/** A point in time: a `Date`, a `DateTime` or an ISO-8601 string. */
export const instant = (field: string, value: unknown): Effect.Effect<Date, InvalidInput> => {
  const date = value instanceof Date
    ? value
    : DateTime.isDateTime(value)
    ? DateTime.toDateUtc(value)
    : typeof value === "string" && /^\d{4}-\d{2}-\d{2}T/.test(value)
    ? new Date(value)
    : undefined
  return date !== undefined && Number.isFinite(date.getTime())
    ? Effect.succeed(date)
    : invalid(field, `must be a date-time (ISO 8601), got ${preview(value)}`)
}
