import { assert, describe, it } from "@effect/vitest"
import * as Path from "node:path"
import { sourceFiles } from "./support/sources.js"

// House rules a reader relies on, checked over the sources (the browser-safe entry points are BrowserSafe.test.ts's,
// the single writer of the event log SingleWriter.test.ts's): module sizes, no casts that erase types, no
// JSON.parse outside a Schema, and repositories that import no service (they read and write; services publish).

const files = sourceFiles("src", ".ts")

/** Relative imports of a module, as paths from `src/` without extension. */
const importsOf = (file: { readonly name: string; readonly text: string }) =>
  [...file.text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)\.js"/g)].map((match) =>
    Path.posix.normalize(Path.posix.join(Path.posix.dirname(file.name), match[1]!))
  )

describe("the house", () => {
  it("no module in src/ is over 400 lines", () => {
    const long = files.filter((file) => file.text.split("\n").length > 400).map((file) => file.name)
    assert.deepStrictEqual(long, [])
  })

  it("no cast through any or unknown, and no JSON.parse (JSON is read through Schema.parseJson)", () => {
    const offenders = files.filter((file) => /\bas any\b|as unknown as|JSON\.parse\(/.test(file.text))
    assert.deepStrictEqual(offenders.map((file) => file.name), [])
  })

  it("repositories import no service: only rows, schemas, the domain, the configuration and other repositories", () => {
    const repos = files.filter((file) => /Repo\.ts$/.test(file.name))
    assert.isAtLeast(repos.length, 6)
    const upward = repos.flatMap((file) =>
      importsOf(file)
        .filter((target) => !/(Repo$|^internal\/|^Domain\/|^Config$|^EventLog\/Outcome$)/.test(target))
        .map((target) => `${file.name} → ${target}`)
    )
    assert.deepStrictEqual(upward, [])
  })
})
