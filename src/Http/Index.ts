import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { version } from "../version.js"

/** What `GET /` points to: the docs, the spec and the health checks. */
export const indexLinks = {
  name: "jobwatch",
  version,
  dashboard: "/dashboard",
  docs: "/docs",
  openapi: "/openapi.json",
  health: "/health",
  ready: "/ready"
} as const

const indexPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jobwatch ${version}</title></head>
<body><h1>jobwatch ${version}</h1>
<p>Job tracking and notifications on PostgreSQL.</p>
<ul><li><a href="/dashboard"><strong>The live dashboard</strong></a>: queues, jobs as they run, workers, webhooks</li>
<li><a href="/docs">API documentation (Swagger UI)</a></li><li><a href="/openapi.json">OpenAPI document</a></li>
<li><a href="/health">/health</a> and <a href="/ready">/ready</a></li></ul>
</body></html>
`

/** `GET /`: a small page for browsers (`Accept: text/html`), the same links as JSON for anyone else. */
export const IndexRoute = HttpLayerRouter.add("GET", "/", (request) => {
  const accept = request.headers["accept"] ?? ""
  const headers = { vary: "Accept" }
  return Effect.succeed(
    accept.includes("text/html")
      ? HttpServerResponse.html(indexPage).pipe(HttpServerResponse.setHeaders(headers))
      : HttpServerResponse.unsafeJson(indexLinks, { headers })
  )
})
