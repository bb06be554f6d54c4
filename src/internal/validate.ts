import { DateTime, Duration, Either, Option, Schema } from "effect"
import { InvalidInput, PayloadTooLarge } from "../Domain/Errors.js"
import { JobId } from "../Domain/JobId.js"
import { parseDuration } from "../Config.js"

export type Invalid = InvalidInput | PayloadTooLarge

/**
 * Field checks answer an `Either` (an `Either` is an `Effect` too): they run synchronously, which matters for
 * 1,000-job batches.
 */
export const invalid = (field: string, message: string): Either.Either<never, InvalidInput> =>
  Either.left(new InvalidInput({ field, message }))

/** For imperative validation of many fields: the value, or the failure thrown (see `caught`). */
export const orThrow = <A>(result: Either.Either<A, Invalid>): A => {
  if (Either.isLeft(result)) throw result.left
  return result.right
}

/** The failure `orThrow` threw, back as a `Left`; anything else is rethrown. */
export const caught = (error: unknown): Either.Either<never, Invalid> => {
  if (error instanceof InvalidInput || error instanceof PayloadTooLarge) return Either.left(error)
  throw error
}

const isJobId = Schema.is(JobId)

/** Whether `value` is a UUID (any case), as job, event and webhook ids are. */
export const isUuid = (value: unknown): value is string => typeof value === "string" && isJobId(value.toLowerCase())

/** A job id from outside: a UUID, or `InvalidInput` naming `field`. */
export const jobId = (value: unknown, field = "id"): Either.Either<JobId, InvalidInput> =>
  isUuid(value)
    ? Either.right(JobId.make(value.toLowerCase()))
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
): Either.Either<string, InvalidInput> => {
  if (typeof value !== "string") return invalid(field, `must be a string, got ${preview(value)}`)
  const min = options.min ?? 1
  if (value.length < min || (min > 0 && value.trim() === "")) {
    return invalid(field, min === 1 ? "must not be empty" : `must have at least ${min} characters`)
  }
  if (value.length > options.max) return invalid(field, `must have at most ${options.max} characters, got ${value.length}`)
  if (nul.test(value)) return invalid(field, "must not contain NUL characters")
  return Either.right(value)
}

export const optionalText = (field: string, value: unknown, max: number): Either.Either<string | null, InvalidInput> =>
  value === undefined || value === null ? Either.right(null) : text(field, value, { max })

export const integer = (
  field: string,
  value: unknown,
  min: number,
  max: number
): Either.Either<number, InvalidInput> =>
  typeof value === "number" && Number.isInteger(value) && value >= min && value <= max
    ? Either.right(value)
    : invalid(field, `must be an integer from ${min} to ${max}, got ${preview(value)}`)

/** Any JSON value, serialised, within `limit` bytes and storable in jsonb. */
export const jsonValue = (field: string, value: unknown, limit: number): Either.Either<string, Invalid> => {
  let json: string | undefined
  try {
    json = JSON.stringify(value === undefined ? null : value)
  } catch (e) {
    return invalid(field, `must be JSON-serialisable: ${e instanceof Error ? e.message : String(e)}`)
  }
  if (json === undefined) return invalid(field, "must be a JSON value")
  // a JS string has at most 3 UTF-8 bytes per UTF-16 unit: measure only when it could be over
  const size = json.length * 3 > limit ? Buffer.byteLength(json) : json.length
  if (size > limit) return Either.left(new PayloadTooLarge({ field, size, limit }))
  if (badJsonEscape.test(json)) {
    return invalid(field, "must not contain \\u0000 or unpaired surrogates (PostgreSQL jsonb cannot store them)")
  }
  return Either.right(json)
}

/** A duration (`DurationInput` or `"5 seconds"`/`"250ms"`), finite and at least `minMs`. */
export const duration = (field: string, value: unknown, minMs = 0): Either.Either<number, InvalidInput> =>
  Option.match(parseDuration(value), {
    onNone: () => invalid(field, `must be a duration, got ${preview(value)}`),
    onSome: (d) => {
      const ms = Duration.toMillis(d)
      return Number.isFinite(ms) && ms >= minMs
        ? Either.right(ms)
        : invalid(field, `must be a finite duration of at least ${minMs} ms`)
    }
  })

/** A point in time: a `Date`, a `DateTime` or an ISO-8601 string. */
export const instant = (field: string, value: unknown): Either.Either<Date, InvalidInput> => {
  const date = value instanceof Date
    ? value
    : DateTime.isDateTime(value)
    ? DateTime.toDateUtc(value)
    : typeof value === "string" && /^\d{4}-\d{2}-\d{2}T/.test(value)
    ? new Date(value)
    : undefined
  if (date === undefined || !Number.isFinite(date.getTime())) {
    return invalid(field, `must be a date-time (ISO 8601), got ${preview(value)}`)
  }
  // what PostgreSQL stores and every client parses: years 1970 to 9999
  return date.getTime() >= 0 && date.getUTCFullYear() <= 9999
    ? Either.right(date)
    : invalid(field, `must be between 1970 and 9999, got ${preview(value)}`)
}
