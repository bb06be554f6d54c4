import { HttpApiClient, HttpClient, HttpClientRequest, HttpLayerRouter } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer, Option, Redacted } from "effect"
import { Api } from "../../src/Api.js"
import * as Auth from "../../src/Auth.js"
import type { JobWatchConfigInput } from "../../src/Config.js"
import type { Role } from "../../src/Domain/Auth.js"
import { RoutesLive, routerConfig } from "../../src/Http.js"
import * as JobWatch from "../../src/JobWatch.js"
import { Repos } from "./repos.js"
import * as TestDb from "./TestDb.js"

/** The HS256 secret of the test servers. */
export const secret = new TextEncoder().encode("jobwatch-test-secret-0123456789-abcdefghij")

export const testKeys = Layer.succeed(Auth.JwtKeysTag, {
  secret: Option.some(Redacted.make(secret)),
  publicKey: Option.none(),
  jwksUrl: Option.none(),
  generated: false
})

/**
 * The real routes with JWT authentication on a test server (`NodeHttpServer.layerTest`: the `HttpClient` it
 * provides talks to it), over jobwatch on a fresh schema; the reaper off.
 */
export const serverLayer = (config: JobWatchConfigInput = {}) =>
  HttpLayerRouter.serve(RoutesLive, { disableLogger: true, disableListenLog: true, routerConfig }).pipe(
    Layer.provide(Auth.layerJwt),
    Layer.provide(testKeys),
    Layer.provideMerge(Layer.merge(JobWatch.layer, Repos.Default.pipe(Layer.provide(JobWatch.MigrationsLive)))),
    // the per-user limits are off unless a test is about them (many tests fire many requests as one user)
    Layer.provideMerge(TestDb.layer({ reaper: false, rateLimit: null, maxStreamsPerUser: null, ...config }, { maxConnections: 20 })),
    Layer.provideMerge(NodeHttpServer.layerTest)
  )

/** A token for `sub` with `roles`, valid for `ttlSeconds` (negative: already expired). */
export const token = (sub: string, roles: ReadonlyArray<Role> = [], ttlSeconds = 3600) =>
  ttlSeconds > 0
    ? Auth.mint(secret, { sub, roles, ttlSeconds })
    : Effect.promise(async () => {
      const jose = await import("jose")
      return new jose.SignJWT({ roles: [...roles] })
        .setProtectedHeader({ alg: "HS256" })
        .setSubject(sub)
        .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
        .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
        .sign(secret)
    })

/** The derived client of the API, sending `bearer` (none when undefined). */
export const clientAs = (bearer: string | undefined) =>
  HttpApiClient.make(Api, {
    transformClient: bearer === undefined ? undefined : HttpClient.mapRequest(HttpClientRequest.bearerToken(bearer))
  })

/** A raw request to the test server: status, headers and the JSON (or text) body. */
export const raw = (
  method: "GET" | "POST" | "PATCH" | "DELETE" | "PUT",
  path: string,
  options: {
    readonly token?: string | undefined
    readonly json?: unknown
    readonly body?: string | undefined
    readonly headers?: Record<string, string> | undefined
  } = {}
) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    let request = HttpClientRequest.make(method)(path)
    if (options.token !== undefined) request = HttpClientRequest.bearerToken(request, options.token)
    if (options.headers !== undefined) request = HttpClientRequest.setHeaders(request, options.headers)
    if (options.json !== undefined) request = HttpClientRequest.bodyUnsafeJson(request, options.json)
    if (options.body !== undefined) request = HttpClientRequest.bodyText(request, options.body, "application/json")
    const response = yield* client.execute(request)
    const text = yield* response.text
    let body: any = text
    try {
      body = text === "" ? undefined : JSON.parse(text)
    } catch {
      // not JSON: the text
    }
    return { status: response.status, headers: response.headers, body }
  }).pipe(Effect.scoped, Effect.orDie)
