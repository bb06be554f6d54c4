// The resolve hook of loadedModules.mjs (it runs on the loader's thread): appends each resolved URL naming
// OpenTelemetry to the file, and the service's entry (src/main.ts), which shows that it saw the process's modules.
import { appendFileSync } from "node:fs"

let file

export const initialize = (data) => {
  file = data.file
}

export const resolve = async (specifier, context, next) => {
  const resolved = await next(specifier, context)
  if (resolved.url.includes("opentelemetry") || resolved.url.endsWith("/src/main.ts")) {
    appendFileSync(file, `esm ${resolved.url}\n`)
  }
  return resolved
}
