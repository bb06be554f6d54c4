import { assert, describe, it } from "@effect/vitest"
import { existsSync, readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { allStatuses, transitions } from "../src/Domain/JobStatus.js"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const readme = readFileSync(join(root, "README.md"), "utf8")

/**
 * What a snippet's imports of the package resolve to: each entry point of `package.json`'s `exports`, mapped to its
 * source here. Only those that exist are mapped (add a row when an entry point is added).
 */
const entryPoints: ReadonlyArray<readonly [specifier: string, source: string]> = [
  ["jobwatch", "src/index.ts"],
  ["jobwatch/client", "src/client.ts"],
  ["jobwatch/domain", "src/Domain/index.ts"]
]

/** A snippet whose first line is this comment is a fragment, not checked (prefer complete snippets). */
const FRAGMENT = "// fragment"

interface Snippet {
  readonly line: number
  readonly code: string
  /** Where it comes from, for the messages. */
  readonly origin?: string
}

/** The ```ts and ```typescript blocks of the README, with the line each starts on. */
const snippetsOf = (markdown: string): ReadonlyArray<Snippet> => {
  const snippets: Array<Snippet> = []
  const lines = markdown.split("\n")
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i]!)) continue
    const start = i + 1
    let end = start
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++
    snippets.push({ line: start + 1, code: lines.slice(start, end).join("\n") })
    i = end
  }
  return snippets
}

/**
 * Typechecks `snippets` in one program, each a module of its own (virtual files beside the tests, so that the
 * packages resolve from this repository's `node_modules`), under the repository's compiler options. Answers the
 * diagnostics of the snippets, formatted with their README line.
 */
const typecheck = (snippets: ReadonlyArray<Snippet>): ReadonlyArray<string> => {
  const configFile = ts.readConfigFile(join(root, "tsconfig.json"), ts.sys.readFile)
  const parsed = ts.parseJsonConfigFileContent(configFile.config, ts.sys, root)
  const paths: Record<string, Array<string>> = {}
  for (const [specifier, source] of entryPoints) {
    if (existsSync(join(root, source))) paths[specifier] = [join(root, source)]
  }
  const options: ts.CompilerOptions = {
    ...parsed.options,
    noEmit: true,
    paths,
    // a snippet may show a value without using it
    noUnusedLocals: false,
    noUnusedParameters: false
  }
  const files = new Map(
    snippets.map((snippet, i) => [
      join(root, "test", `readme-snippet-${i + 1}.ts`),
      { snippet, text: `${snippet.code}\nexport {}\n` }
    ])
  )
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile.bind(host)
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    const file = files.get(resolve(fileName))
    return file === undefined
      ? getSourceFile(fileName, languageVersion, onError, shouldCreate)
      : ts.createSourceFile(fileName, file.text, languageVersion, true)
  }
  const fileExists = host.fileExists.bind(host)
  host.fileExists = (fileName) => files.has(resolve(fileName)) || fileExists(fileName)
  const readFile = host.readFile.bind(host)
  host.readFile = (fileName) => files.get(resolve(fileName))?.text ?? readFile(fileName)
  const program = ts.createProgram([...files.keys()], options, host)
  return [...files.entries()].flatMap(([fileName, { snippet }]) => {
    const source = program.getSourceFile(fileName)!
    return [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)].map((d) => {
      const { line } = d.start === undefined ? { line: 0 } : source.getLineAndCharacterOfPosition(d.start)
      const message = ts.flattenDiagnosticMessageText(d.messageText, "\n")
      return `${snippet.origin ?? "README.md"}:${snippet.line + line}: ${message}`
    })
  })
}

/** A snippet that must not compile, checked in the same program: proves that a broken snippet is reported. */
const canary: Snippet = {
  line: 1,
  origin: "canary",
  code: "import { Jobs } from \"jobwatch\"\n\nconst n: number = Jobs"
}

/** One program for all of them (the sources and their types are loaded once). */
let checked: ReadonlyArray<string> | undefined
const diagnostics = () =>
  (checked ??= typecheck([...snippetsOf(readme).filter((s) => !s.code.startsWith(FRAGMENT)), canary]))

describe("README", () => {
  it("every TypeScript snippet typechecks against the sources", () => {
    assert.isAtLeast(snippetsOf(readme).length, 5, "the README's snippets were found")
    assert.deepStrictEqual(diagnostics().filter((d) => !d.startsWith("canary:")), [])
  }, 180_000)

  it("a snippet that does not compile is reported, with its line", () => {
    const errors = diagnostics().filter((d) => d.startsWith("canary:"))
    assert.lengthOf(errors, 1)
    assert.match(errors[0]!, /^canary:3: Type 'typeof Jobs' is not assignable to type 'number'/)
  }, 180_000)

  it("the status diagram shows exactly the transition table of Domain/JobStatus.ts", () => {
    const diagram = readme.slice(readme.indexOf("```mermaid\nstateDiagram-v2"))
    const block = diagram.slice(0, diagram.indexOf("\n```\n"))
    const statuses = new Set<string>(allStatuses)
    const drawn = [...block.matchAll(/^\s*(\w+) --> (\w+)/gm)]
      .filter((m) => statuses.has(m[1]!) && statuses.has(m[2]!))
      .map((m) => `${m[1]} → ${m[2]}`)
    const table = allStatuses.flatMap((from) => transitions[from].map((to) => `${from} → ${to}`))
    assert.sameMembers(drawn, table)
    assert.lengthOf(drawn, table.length, "each transition once")
    for (const status of allStatuses) assert.include(readme, `| \`${status}\` |`, `${status} has a row`)
  })

  it("every file or folder of the repository it names exists", () => {
    const named = [...readme.matchAll(/`([^`\s]+)`/g)]
      .map((m) => m[1]!)
      .filter((path) => /^(src|test|sql|patches)\//.test(path) || /^[\w./-]+\.(ts|md|sql|json)$/.test(path))
      .filter((path) => !path.startsWith("/") && !path.includes("<"))
    assert.isAtLeast(named.length, 3)
    const missing = named.filter((path) => !existsSync(join(root, path)))
    assert.deepStrictEqual(missing, [])
  })
})
