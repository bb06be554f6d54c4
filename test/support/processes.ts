import { Effect } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

/** Runs `test/support/<script>` under tsx with `args`; SIGKILLed after `timeoutMs`. */
export const runScript = (script: string, args: ReadonlyArray<string>, timeoutMs = 60_000) =>
  Effect.async<{ code: number | null; stdout: string; stderr: string }>((resume) => {
    const path = fileURLToPath(new URL(`./${script}`, import.meta.url))
    const proc = spawn(process.execPath, ["--import", "tsx", path, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    proc.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    proc.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs)
    proc.on("close", (code) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code, stdout, stderr }))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      proc.kill("SIGKILL")
    })
  })
