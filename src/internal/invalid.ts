import { Either, ParseResult, Schema } from "effect"
import { InvalidInput, PayloadTooLarge } from "../Domain/Errors.js"
import { excerpt, isStorableJson, jsonValueTooDeep, MAX_JSON_DEPTH } from "../Domain/Values.js"

/** A parse issue's path as the API names fields: `jobs[3].name`. */
export const fieldOfPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (field, key) =>
      typeof key === "number" ? `${field}[${key}]` : field === "" ? String(key) : `${field}.${String(key)}`,
    ""
  )

/**
 * The `InvalidInput` of a value that did not decode: its first issue's field (after `prefix`; `fallback` when the
 * issue is the whole value's), and a bounded message.
 */
export const invalidOf = (error: ParseResult.ParseError, prefix = "", fallback = "payload"): InvalidInput => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  const path = issue === undefined || issue.path.length === 0 ? "" : fieldOfPath(issue.path)
  const base = prefix.endsWith(".") ? prefix.slice(0, -1) : prefix
  const field = path === ""
    ? (base === "" ? fallback : base)
    : base === "" || path.startsWith("[")
    ? `${base}${path}`
    : `${base}.${path}`
  const message = excerpt(issue?.message ?? "is invalid")
  // the schemas' own messages ("must …", "is missing", "give runAt or delay, not both"); else "Expected …, actual …"
  const phrased = /^(must|is|give|needs|unknown) /.test(message)
    ? message
    : `is invalid: ${message.charAt(0).toLowerCase()}${message.slice(1)}`
  return new InvalidInput({ field, message: `${field} ${phrased}` })
}

/**
 * A decoder of `schema` for a service's argument `field`: what code passes in is checked by the same schema as what
 * the HTTP API and the RPC group decode, and refused with `InvalidInput` naming the field (`ids[3]`).
 */
export const decodeField = <A, I>(schema: Schema.Schema<A, I>, field: string) => {
  const decode = decodeFieldAt(schema)
  return (value: unknown): Either.Either<A, InvalidInput> => decode(value, field)
}

const none: unique symbol = Symbol("none")

/**
 * `decodeField` with the field named per call (`items[3].id`): one decoder for every item. It remembers its last
 * primitive input: a worker passes the same worker id, limit and wait on every claim and completion, and their
 * schema checks were a visible share of a busy worker's time.
 */
export const decodeFieldAt = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(schema)
  let lastInput: unknown = none
  let lastOutput: Either.Either<A, ParseResult.ParseError> | undefined
  return (value: unknown, field: string): Either.Either<A, InvalidInput> => {
    let output: Either.Either<A, ParseResult.ParseError>
    if (value === lastInput && lastOutput !== undefined) {
      output = lastOutput
    } else {
      output = decode(value)
      if (value === null || (typeof value !== "object" && typeof value !== "function")) {
        lastInput = value
        lastOutput = output
      }
    }
    return Either.isRight(output) ? output as Either.Either<A, never> : Either.left(invalidOf(output.left, field))
  }
}

/**
 * Any JSON value, serialised, within `limit` bytes (the configuration's) and storable in jsonb; `PayloadTooLarge` or
 * `InvalidInput` naming `field` otherwise. The depth is checked first: `JSON.stringify` recurses.
 */
export const jsonValue = (
  field: string,
  value: unknown,
  limit: number
): Either.Either<string, InvalidInput | PayloadTooLarge> => {
  const invalid = (message: string) => Either.left(new InvalidInput({ field, message }))
  if (jsonValueTooDeep(value, MAX_JSON_DEPTH)) return invalid(`must not nest deeper than ${MAX_JSON_DEPTH} levels`)
  let json: string | undefined
  try {
    json = JSON.stringify(value === undefined ? null : value)
  } catch (e) {
    return invalid(`must be JSON-serialisable: ${excerpt(e instanceof Error ? e.message : String(e), 200)}`)
  }
  if (json === undefined) return invalid("must be a JSON value")
  // a JS string has at most 3 UTF-8 bytes per UTF-16 unit: measure only when it could be over
  const size = json.length * 3 > limit ? new TextEncoder().encode(json).length : json.length
  if (size > limit) return Either.left(new PayloadTooLarge({ field, size, limit }))
  if (!isStorableJson(json)) {
    return invalid("must not contain \\u0000 or unpaired surrogates (PostgreSQL jsonb cannot store them)")
  }
  return Either.right(json)
}
