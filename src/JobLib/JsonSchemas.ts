import { Ajv2020 } from "ajv/dist/2020.js"
import type { ErrorObject, ValidateFunction } from "ajv/dist/2020.js"
import addFormats from "ajv-formats"
import canonicalize from "canonicalize"
import safeRegex from "safe-regex2"
import { Either } from "effect"
import { createHash } from "node:crypto"

/** A schema's text is at most this long (its canonical JSON). */
export const MAX_SCHEMA_BYTES = 64 * 1024
/** Compiled validators kept (a compile costs milliseconds; a validation, microseconds). */
const CACHE_SIZE = 500
/** Validation errors answered for one payload. */
const MAX_ISSUES = 50

export interface PayloadIssue {
  readonly path: string
  readonly message: string
}

/** `sha256:` and the hex SHA-256 of a JSON value's canonical form (RFC 8785): equal for equal JSON values. */
export const digestOf = (value: unknown): string =>
  `sha256:${createHash("sha256").update(canonicalize(value) ?? "null").digest("hex")}`

// a fresh Ajv per schema: a schema's own `$id` registers it in its instance (two schemas with one `$id` would
// collide there), and an instance keeps every schema it compiled (a cache without a bound)
const compile = (schema: object): ValidateFunction => {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true })
  addFormats.default(ajv)
  if (ajv.validateSchema(schema) !== true) {
    throw new Error(ajv.errorsText(ajv.errors, { dataVar: "schema", separator: "; " }))
  }
  return ajv.compile(schema)
}

/** Keywords whose values are data, not schemas: a `pattern` inside them is not a regular expression. */
const dataKeywords = new Set(["const", "enum", "default", "examples"])

/**
 * The first regular expression of a schema (`pattern`, `patternProperties`' keys) that may take exponential time
 * on some input (nested quantifiers: `(a+)+`), by safe-regex2's star-height check. Every payload pushed runs them,
 * so such a schema is refused when registered. A heuristic: it catches the classic shapes, not every slow one.
 */
const unsafePattern = (schema: unknown, depth = 0): string | undefined => {
  if (depth > 64 || typeof schema !== "object" || schema === null) return undefined
  if (Array.isArray(schema)) {
    for (const item of schema) {
      const found = unsafePattern(item, depth + 1)
      if (found !== undefined) return found
    }
    return undefined
  }
  for (const [key, value] of Object.entries(schema)) {
    if (dataKeywords.has(key)) continue
    if (key === "pattern" && typeof value === "string" && !safeRegex(value)) return value
    if (key === "patternProperties" && typeof value === "object" && value !== null) {
      const found = Object.keys(value).find((pattern) => !safeRegex(pattern))
      if (found !== undefined) return found
    }
    const found = unsafePattern(value, depth + 1)
    if (found !== undefined) return found
  }
  return undefined
}

const issueOf = (error: ErrorObject): PayloadIssue => {
  // a missing property's path is the property's own
  const missing = error.keyword === "required" ? (error.params as { missingProperty?: string }).missingProperty : undefined
  const path = missing === undefined ? error.instancePath : `${error.instancePath}/${missing.replace(/~/g, "~0").replace(/\//g, "~1")}`
  return { path: path === "" ? "/" : path, message: error.message ?? error.keyword }
}

/**
 * JSON Schemas (draft 2020-12, with the standard formats) checked and compiled once per digest: `check` a schema
 * to register, `validate` a payload against a registered one.
 */
export const makeJsonSchemas = () => {
  const validators = new Map<string, ValidateFunction>()
  const validatorOf = (digest: string, schema: object): ValidateFunction => {
    let validate = validators.get(digest)
    if (validate !== undefined) {
      // most recently used last
      validators.delete(digest)
      validators.set(digest, validate)
      return validate
    }
    validate = compile(schema)
    validators.set(digest, validate)
    if (validators.size > CACHE_SIZE) validators.delete(validators.keys().next().value!)
    return validate
  }

  /** A schema to register: its digest, or why it is not a JSON Schema this service can use. */
  const check = (schema: object): Either.Either<string, string> => {
    const text = canonicalize(schema) ?? ""
    if (Buffer.byteLength(text) > MAX_SCHEMA_BYTES) {
      return Either.left(`must be at most ${MAX_SCHEMA_BYTES} bytes as JSON, got ${Buffer.byteLength(text)}`)
    }
    const unsafe = unsafePattern(schema)
    if (unsafe !== undefined) {
      return Either.left(
        `has a pattern that may take exponential time on some input (nested quantifiers): ${JSON.stringify(unsafe.slice(0, 100))}`
      )
    }
    const digest = digestOf(schema)
    try {
      validatorOf(digest, schema)
      return Either.right(digest)
    } catch (error) {
      return Either.left(`is not a valid JSON Schema (draft 2020-12): ${error instanceof Error ? error.message : String(error)}`)
    }
  }

  /** The ways `payload` breaks the schema of digest `digest` (none: it matches). */
  const validate = (digest: string, schema: object, payload: unknown): ReadonlyArray<PayloadIssue> => {
    const validator = validatorOf(digest, schema)
    if (validator(payload) === true) return []
    return (validator.errors ?? []).slice(0, MAX_ISSUES).map(issueOf)
  }

  return { check, validate } as const
}
