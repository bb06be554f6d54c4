import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

/** The repository's root directory. */
export const root = fileURLToPath(new URL("../..", import.meta.url))

/** The files under `dir` (from the root) whose names end with `ext`: paths from `dir`, `/`-separated, and text. */
export const sourceFiles = (dir: string, ext: string): ReadonlyArray<{ readonly name: string; readonly text: string }> =>
  Fs.readdirSync(Path.join(root, dir), { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(ext))
    .sort()
    .map((file) => ({ name: file.split(Path.sep).join("/"), text: Fs.readFileSync(Path.join(root, dir, file), "utf8") }))
