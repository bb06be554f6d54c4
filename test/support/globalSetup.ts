import { Effect, Exit, Redacted, Scope } from "effect"
import type { TestProject } from "vitest/node"
import * as EmbeddedPostgres from "../../src/Database/EmbeddedPostgres.js"
import { answers, machinePostgres } from "./machinePostgres.js"

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string
    databaseKind: string
  }
}

/**
 * The database the suite runs against: `JOBWATCH_TEST_DATABASE_URL`; else the machine's PostgreSQL on
 * 127.0.0.1:5432 when it answers (CI); else, or with `JOBWATCH_TEST_PG=embedded`, a throwaway embedded PostgreSQL 18.
 * Each test file then works in a fresh schema of its own.
 */
export default async function setup(project: TestProject) {
  const explicit = process.env.JOBWATCH_TEST_DATABASE_URL
  const forceEmbedded = process.env.JOBWATCH_TEST_PG === "embedded"
  if (explicit !== undefined && explicit !== "") {
    project.provide("databaseUrl", explicit)
    project.provide("databaseKind", "JOBWATCH_TEST_DATABASE_URL")
    return
  }
  if (!forceEmbedded && (await answers(machinePostgres))) {
    project.provide("databaseUrl", machinePostgres)
    project.provide("databaseKind", "PostgreSQL on 127.0.0.1:5432")
    return
  }
  const scope = Effect.runSync(Scope.make())
  const cluster = await Effect.runPromise(Scope.extend(EmbeddedPostgres.startThrowaway, scope))
  project.provide("databaseUrl", Redacted.value(cluster.url))
  project.provide("databaseKind", "embedded PostgreSQL 18")
  return async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}
