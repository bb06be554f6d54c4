import { Effect } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

export interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `node --import tsx <path> <args>` (plain `node` with `tsx: false`) with `env` added; SIGKILLed after `timeoutMs`. */
export const runNode = (
  path: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string | undefined>; readonly timeoutMs?: number; readonly tsx?: boolean } = {}
) =>
  Effect.async<Ran>((resume) => {
    const proc = spawn(process.execPath, [...(options.tsx === false ? [] : ["--import", "tsx"]), path, ...args], {
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    proc.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    proc.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => proc.kill("SIGKILL"), options.timeoutMs ?? 60_000)
    proc.on("close", (code) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code, stdout, stderr }))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      proc.kill("SIGKILL")
    })
  })

/** A file of the repository, by its path from the repository's root (`src/token.ts`). */
export const repoPath = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url))

/** Runs `test/support/<script>` under tsx with `args`; SIGKILLed after `timeoutMs`. */
export const runScript = (script: string, args: ReadonlyArray<string>, timeoutMs = 60_000) =>
  runNode(fileURLToPath(new URL(`./${script}`, import.meta.url)), args, { timeoutMs })
