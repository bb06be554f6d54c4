// Preloaded with `node --import` by the traces tests: writes to the file named by JOBWATCH_LOADED_MODULES, one per
// line, every module whose URL names OpenTelemetry that the process loaded: the ES modules as they resolve (a resolve
// hook), and at exit the CommonJS ones (require.cache, where the SDK's packages land). `loaded-modules-spy` first.
import { appendFileSync, writeFileSync } from "node:fs"
import { createRequire, register } from "node:module"

const file = process.env.JOBWATCH_LOADED_MODULES
if (file !== undefined && file !== "") {
  writeFileSync(file, "loaded-modules-spy\n")
  register("./loadedModulesHooks.mjs", import.meta.url, { data: { file } })
  const require = createRequire(import.meta.url)
  process.on("exit", () => {
    const names = Object.keys(require.cache).filter((name) => name.includes("opentelemetry"))
    appendFileSync(file, names.map((name) => `cjs ${name}\n`).join(""))
  })
}
