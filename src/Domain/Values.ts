// What PostgreSQL can store, and how deep JSON may nest: the predicates behind the request schemas' filters
// (`Requests.ts`) and the few checks the server makes on raw text (request bodies, RPC frames). Browser-safe.

import { Either, Schema } from "effect"

const decodeJson = Schema.decodeUnknownEither(Schema.parseJson())

/** JSON text as a value, read through Schema (`Schema.parseJson`); `Left` with why it is not JSON. */
export const parseJsonText = (text: string): Either.Either<unknown, string> =>
  Either.mapLeft(decodeJson(text), (error) => error.message.split("\n").pop()!.replace(/^[\s└─]+/, ""))

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

// PostgreSQL text cannot hold NUL; jsonb cannot hold \u0000 or a lone surrogate (JSON.stringify escapes those)
const nul = /\u0000/
// a high surrogate not followed by a low one, or a low one not preceded by a high one
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/
const badJsonEscape = /(?:^|[^\\])(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i

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

/** Whether jsonb can store the JSON text `json` (made by `JSON.stringify`): no `\u0000`, no unpaired surrogate. */
export const isStorableJson = (json: string): boolean => !badJsonEscape.test(json)

/** A UUID in any case (job, event and webhook ids). */
export const UUID_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/

/** Whether `value` is a UUID (any case). */
export const isUuid = (value: unknown): value is string => typeof value === "string" && UUID_PATTERN.test(value)

// PostgreSQL's double precision refuses subnormal numbers ("value out of range: underflow")
const MIN_NORMAL = 2.2250738585072014e-308

/** Whether `n` is a number PostgreSQL's double precision can store: 0, or a normal (not subnormal) finite number. */
export const isStorableNumber = (n: number): boolean => n === 0 || (Number.isFinite(n) && Math.abs(n) >= MIN_NORMAL)

/** `s`, or its first `max` characters and an ellipsis: an error never echoes more of the input than that. */
export const excerpt = (s: string, max = 300): string => (s.length > max ? `${s.slice(0, max - 1)}…` : s)

/** A short rendering of a value for an error message. */
export const preview = (value: unknown): string => {
  const text = typeof value === "string" ? JSON.stringify(value) : String(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}
