import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Option } from "effect"
import { createHash } from "node:crypto"
import * as Fs from "node:fs/promises"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"
import { securityHeaders } from "./layout.js"

/**
 * The dashboard's static files, all from this package or its dependencies (no CDN: it works offline): htmx and its
 * SSE extension as their packages ship them (the extension's `dist/sse.js`, not its ESM `main`), and the dashboard's
 * own stylesheet and script from the package's `assets/` folder.
 */

const require = createRequire(import.meta.url)
// src/Dashboard/ and dist/Dashboard/ are both two levels below the package's root
const own = (name: string) => fileURLToPath(new URL(`../../assets/${name}`, import.meta.url))

const files: Record<string, { readonly path: () => string; readonly type: string }> = {
  "htmx.min.js": { path: () => require.resolve("htmx.org/dist/htmx.min.js"), type: "text/javascript; charset=utf-8" },
  "sse.js": { path: () => require.resolve("htmx-ext-sse/dist/sse.js"), type: "text/javascript; charset=utf-8" },
  "dashboard.js": { path: () => own("dashboard.js"), type: "text/javascript; charset=utf-8" },
  "dashboard.css": { path: () => own("dashboard.css"), type: "text/css; charset=utf-8" }
}

interface Loaded {
  readonly body: Uint8Array
  readonly etag: string
  readonly type: string
}

const loaded = new Map<string, Promise<Loaded>>()

const load = (name: string, type: string, path: string): Promise<Loaded> => {
  let promise = loaded.get(name)
  if (promise === undefined) {
    promise = Fs.readFile(path).then((body) => ({
      body,
      type,
      etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`
    }))
    // a failed read is tried again next time
    promise.catch(() => loaded.delete(name))
    loaded.set(name, promise)
  }
  return promise
}

/** `GET /dashboard/assets/<name>`: the file, with an ETag (a `304` when the browser has it); 404 for any other name. */
export const serveAsset = (name: string) =>
  Effect.gen(function*() {
    const file = Object.hasOwn(files, name) ? files[name] : undefined
    if (file === undefined) {
      return HttpServerResponse.text("no such asset", { status: 404, headers: securityHeaders })
    }
    const asset = yield* Effect.option(Effect.tryPromise(() => load(name, file.type, file.path())))
    if (Option.isNone(asset)) {
      return yield* Effect.die(new Error(`the dashboard's asset ${name} is missing from the installation`))
    }
    const request = yield* HttpServerRequest.HttpServerRequest
    const headers = {
      "x-content-type-options": "nosniff",
      "cache-control": "public, max-age=3600, must-revalidate",
      etag: asset.value.etag
    }
    if (request.headers["if-none-match"] === asset.value.etag) return HttpServerResponse.empty({ status: 304, headers })
    return HttpServerResponse.uint8Array(asset.value.body, { contentType: asset.value.type, headers })
  })
