import fc from "fast-check"

// Arbitraries for the fuzz (test/Fuzz.test.ts): JSON values shaped by a JSON Schema, then broken.

/** JSON text written as is into a body (numbers JSON.stringify cannot write, deep nesting, broken JSON). */
export class Raw {
  constructor(readonly text: string) {}
}

export const nested = (depth: number) => `${"[".repeat(depth)}1${"]".repeat(depth)}`
const nestedObjects = (depth: number) => `${"{\"a\":".repeat(depth)}1${"}".repeat(depth)}`

/** JSON text of a value that may hold `Raw` parts (no recursion deeper than the generated values). */
export const toJson = (value: unknown): string => {
  if (value instanceof Raw) return value.text
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? "null" : toJson(item))).join(",")}]`
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).filter(([, item]) => item !== undefined)
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${toJson(item)}`).join(",")}}`
  }
  return JSON.stringify(value) ?? "null"
}

export type JsonSchema = { readonly [key: string]: any }

/** Strings no field should take: empty, blank, NUL, lone surrogates (a pair is fine), injections, numbers as text. */
export const nastyString = fc.constantFrom(
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "x\udfffy",
  "\udbff\ud800",
  "\ud83d\ude00",
  "%00",
  "../../etc/passwd",
  "'; DROP TABLE jobs; --",
  "<script>alert(1)</script>",
  "\n\r\t",
  "null",
  "NaN",
  "-1",
  "1e400",
  "2026-13-45T25:61:61Z",
  "0000-01-01T00:00:00Z"
)
export const hugeString = fc.constantFrom(201, 1001, 2001, 10_001, 70_000, 200_000).map((n) => "x".repeat(n))
/** Numbers at and past every edge, and JSON number texts JavaScript cannot hold. */
export const nastyNumber = fc.constantFrom<unknown>(
  0,
  -0,
  -1,
  0.5,
  1.5,
  2 ** 31,
  -(2 ** 31) - 1,
  2 ** 53 + 2,
  1e21,
  1e308,
  -1e308,
  5e-324,
  -5e-324,
  1e-310,
  3601,
  1e13,
  new Raw("1e400"),
  new Raw("-1e400"),
  new Raw("1E+9999"),
  new Raw("-0.0e-0"),
  new Raw("123456789012345678901234567890")
)
export const deepValue = fc.constantFrom(63, 64, 65, 66, 69, 500, 10_000).chain((depth) =>
  fc.constantFrom(new Raw(nested(depth)), new Raw(nestedObjects(depth)))
)
/** A value of any wrong kind. */
export const badValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: nastyString },
  { weight: 2, arbitrary: hugeString },
  { weight: 3, arbitrary: nastyNumber },
  { weight: 2, arbitrary: deepValue },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>([], {}, [[]], { "": null }) },
  { weight: 1, arbitrary: fc.array(nastyString, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 5 }), nastyString, { maxKeys: 3 }) },
  { weight: 2, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() }
)
/** Bodies that are not JSON at all, or not the JSON of an object. */
export const brokenBody = fc.constantFrom(
  new Raw(""),
  new Raw("{"),
  new Raw("{'name':'x'}"),
  new Raw("[1,2"),
  new Raw("{\"a\":1}}"),
  new Raw("\u0000"),
  new Raw("nul"),
  new Raw(nested(10_000)),
  new Raw(`{"a":"${"\\".repeat(101)}"}`),
  new Raw("\"\\ud800\"")
)

/** `schema` with its `$ref`s (to `components`) resolved. */
export const resolver = (components: Record<string, JsonSchema>) => {
  const resolve = (schema: JsonSchema | undefined): JsonSchema => {
    let current = schema ?? {}
    for (let i = 0; i < 10 && typeof current.$ref === "string"; i++) {
      const { $ref, ...rest } = current
      current = { ...components[String($ref).replace("#/components/schemas/", "")], ...rest }
    }
    return current
  }
  return resolve
}

/**
 * Values `schema` accepts, or nearly (lengths and ranges kept small): the base that mutations break. `strings` are
 * mixed into every string (ids and names of fixtures, so that some requests reach real rows).
 */
export const validish = (
  resolve: (schema: JsonSchema | undefined) => JsonSchema,
  strings: ReadonlyArray<string>
) => {
  const make = (raw: JsonSchema | undefined, depth: number): fc.Arbitrary<unknown> => {
    const schema = resolve(raw)
    if (Array.isArray(schema.enum)) return fc.constantFrom(...schema.enum)
    if (schema.const !== undefined) return fc.constant(schema.const)
    const union = schema.anyOf ?? schema.oneOf
    if (Array.isArray(union) && union.length > 0) return fc.oneof(...union.map((s: JsonSchema) => make(s, depth)))
    switch (schema.type) {
      case "string":
        return fc.oneof(
          fc.string({ minLength: 1, maxLength: Math.min(schema.maxLength ?? 20, 20) }),
          strings.length > 0 ? fc.constantFrom(...strings) : fc.constant("x")
        )
      case "integer":
        return fc.integer({ min: Math.max(schema.minimum ?? -5, -1000), max: Math.min(schema.maximum ?? 1000, 1000) })
      case "number":
        return fc.double({ min: Math.max(schema.minimum ?? -5, -1000), max: Math.min(schema.maximum ?? 1000, 1000), noNaN: true })
      case "boolean":
        return fc.boolean()
      case "array":
        return depth > 3 ? fc.constant([]) : fc.array(make(schema.items, depth + 1), { minLength: 1, maxLength: 3 })
      case "object": {
        if (depth > 3) return fc.constant({})
        const properties: Record<string, JsonSchema> = schema.properties ?? {}
        const record: Record<string, fc.Arbitrary<unknown>> = {}
        for (const [key, property] of Object.entries(properties)) record[key] = make(property, depth + 1)
        return fc.record(record, { requiredKeys: (schema.required ?? []).filter((key: string) => key in properties) })
      }
      default:
        return fc.jsonValue({ maxDepth: 2 })
    }
  }
  return (schema: JsonSchema | undefined) => make(schema, 0)
}

/** The paths into a value of `schema` (`["jobs", 0, "name"]`), for mutations. */
export const pathsOf = (resolve: (schema: JsonSchema | undefined) => JsonSchema, root: JsonSchema | undefined) => {
  const paths: Array<ReadonlyArray<string | number>> = []
  const walk = (raw: JsonSchema | undefined, prefix: ReadonlyArray<string | number>, depth: number) => {
    const schema = resolve(raw)
    if (depth > 3) return
    if (schema.type === "object") {
      for (const [key, property] of Object.entries<JsonSchema>(schema.properties ?? {})) {
        paths.push([...prefix, key])
        walk(property, [...prefix, key], depth + 1)
      }
    } else if (schema.type === "array") {
      paths.push([...prefix, 0])
      walk(schema.items, [...prefix, 0], depth + 1)
    }
  }
  walk(root, [], 0)
  return paths
}

/** `value` with the value at `path` replaced (or deleted, for `undefined`); containers are made where missing. */
export const setAt = (value: unknown, path: ReadonlyArray<string | number>, replacement: unknown): unknown => {
  if (path.length === 0) return replacement
  const [head, ...rest] = path
  const container: any = typeof value === "object" && value !== null && !(value instanceof Raw)
    ? (Array.isArray(value) ? [...value] : { ...value })
    : typeof head === "number" ? [] : {}
  container[head!] = setAt(container[head!], rest, replacement)
  if (replacement === undefined && rest.length === 0) delete container[head!]
  return container
}
