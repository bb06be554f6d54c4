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

/** `s`, or its first `max` characters and an ellipsis: an error never echoes more of the input than that. */
export const excerpt = (s: string, max = 300): string => (s.length > max ? `${s.slice(0, max - 1)}…` : s)

export const preview = (value: unknown): string => {
  const text = typeof value === "string" ? JSON.stringify(value) : String(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

// PostgreSQL text cannot hold NUL; jsonb cannot hold \u0000 or a lone surrogate (JSON.stringify escapes those)
const nul = /\u0000/
const badJsonEscape = /(?:^|[^\\])(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i
// a high surrogate not followed by a low one, or a low one not preceded by a high one
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/**
 * Why PostgreSQL cannot store `value` as text (or inside json): it holds a NUL or an unpaired UTF-16 surrogate
 * (`"\ud800"`, which JSON allows and UTF-8 cannot encode); `undefined` when it can.
 */
export const textProblem = (value: string): string | undefined =>
  nul.test(value)
    ? "must not contain NUL characters"
    : loneSurrogate.test(value)
    ? "must not contain unpaired UTF-16 surrogates (text must be valid Unicode)"
    : undefined

/** Whether PostgreSQL can store `value` as text: no NUL and no unpaired surrogate (see `textProblem`). */
export const isStorableText = (value: string): boolean => textProblem(value) === undefined

/**
 * How deep JSON may nest: a payload, result or progress data at most `MAX_JSON_DEPTH` levels (`[]`/`{}` count one
 * level each; a scalar none), a request body or RPC frame at most `MAX_BODY_DEPTH`, that and the levels of the
 * body around the deepest value (`{"payload":{"jobs":[{"payload": …}]}}`). Deeper values would overflow the stack
 * of whatever formats, encodes or copies them recursively.
 */
export const MAX_JSON_DEPTH = 64
export const MAX_BODY_DEPTH = MAX_JSON_DEPTH + 4

/**
 * Whether the JSON text `text` nests deeper than `limit`: a scan of its brackets outside strings, without recursion
 * and without parsing, so it is safe and cheap on any input (malformed text is for the parser to refuse).
 */
export const jsonTextTooDeep = (text: string, limit: number): boolean => {
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 34) {
      // a string: on to its closing quote (one not escaped by an odd number of backslashes), at indexOf's speed
      let end = text.indexOf("\"", i + 1)
      while (end !== -1) {
        let backslashes = 0
        for (let j = end - 1; text.charCodeAt(j) === 92; j--) backslashes++
        if (backslashes % 2 === 0) break
        end = text.indexOf("\"", end + 1)
      }
      if (end === -1) return false
      i = end
    } else if (c === 91 || c === 123) {
      if (++depth > limit) return true
    } else if (c === 93 || c === 125) depth--
  }
  return false
}

/** Whether the value `value` nests arrays and objects deeper than `limit`, by a walk without recursion. */
export const jsonValueTooDeep = (value: unknown, limit: number): boolean => {
  if (typeof value !== "object" || value === null) return false
  const stack: Array<{ readonly value: object; readonly depth: number }> = [{ value, depth: 1 }]
  while (stack.length > 0) {
    const { depth, value: node } = stack.pop()!
    if (depth > limit) return true
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (typeof child === "object" && child !== null) stack.push({ value: child, depth: depth + 1 })
    }
  }
  return false
}

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
  const problem = textProblem(value)
  return problem === undefined ? Either.right(value) : invalid(field, problem)
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

/** Any JSON value, serialised, within `limit` bytes, nested at most `MAX_JSON_DEPTH` levels and storable in jsonb. */
export const jsonValue = (field: string, value: unknown, limit: number): Either.Either<string, Invalid> => {
  // before serialising: JSON.stringify recurses, and a deep enough value overflows its stack
  if (jsonValueTooDeep(value, MAX_JSON_DEPTH)) return invalid(field, `must not nest deeper than ${MAX_JSON_DEPTH} levels`)
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
