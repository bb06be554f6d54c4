import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Either, Option, Redacted } from "effect"
import * as jose from "jose"
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { StreamAuthentication } from "../Auth/Api.js"
import type { User } from "../Domain/Auth.js"

/**
 * The dashboard's session: the token a user signed in with, in an HttpOnly, `SameSite=Strict` cookie scoped to
 * `/dashboard` (no script of any page can read it, and no other site's page can send it), verified on every request
 * by the service's `StreamAuthentication` port (jobwatch's JWTs, or an embedding host's own tokens). Every action
 * also carries a CSRF token derived from the session's token, which a page of another origin cannot know.
 */

export const basePath = "/dashboard"
export const sessionCookie = "jobwatch_dashboard"
/** Before sign-in: a random value the sign-in form's CSRF token is derived from (no session exists yet). */
export const loginCookie = "jobwatch_dashboard_login"
/** The form field and the header (htmx requests) that carry the CSRF token. */
export const csrfField = "_csrf"
export const csrfHeader = "x-csrf-token"

/** A signed-in user of the dashboard, with the CSRF token of its session. */
export interface Session {
  readonly user: User
  readonly csrf: string
}

/** The CSRF token of a session (or of a sign-in form): a digest of its secret, not the secret. */
export const csrfOf = (secret: string) =>
  createHash("sha256").update("jobwatch-dashboard-csrf\u0000").update(secret).digest("base64url")

const sameText = (a: string, b: string) => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** Whether `offered` (a form field or header) is the CSRF token `expected`. */
export const sameCsrf = (expected: string, offered: string | undefined) =>
  offered !== undefined && offered !== "" && sameText(expected, offered)

/** Whether `offered` is the CSRF token of `secret`. */
export const csrfMatches = (secret: string, offered: string | undefined) => sameCsrf(csrfOf(secret), offered)

/** Whether the request came over HTTPS (directly or through a proxy that says so): its cookies are then `Secure`. */
const isHttps = (request: HttpServerRequest.HttpServerRequest) =>
  request.headers["x-forwarded-proto"]?.split(",")[0]?.trim() === "https" ||
  Option.exists(HttpServerRequest.toURL(request), (url) => url.protocol === "https:")

/** A cookie of the dashboard's own: HttpOnly, `SameSite=Strict`, on `/dashboard` only. */
const cookieOptions = (request: HttpServerRequest.HttpServerRequest, maxAgeSeconds: number) => ({
  httpOnly: true,
  sameSite: "strict" as const,
  path: basePath,
  secure: isHttps(request),
  maxAge: `${Math.max(0, Math.floor(maxAgeSeconds))} seconds` as const
})

/** A session cookie lasts as long as its token: a JWT's `exp`; 12 hours for a token that is not a JWT. */
const lifetimeOf = (token: string) => {
  const exp = Either.getOrUndefined(Either.try(() => jose.decodeJwt(token).exp))
  return exp === undefined ? 12 * 3600 : exp - Date.now() / 1000
}

/** The session of the request's cookie, or none (no cookie, or a token that no longer verifies). */
export const currentSession = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const token = request.cookies[sessionCookie]
  if (token === undefined || token === "") return Option.none<Session>()
  const auth = yield* StreamAuthentication
  const user = yield* Effect.option(auth.accessToken(Redacted.make(token)))
  return Option.map(user, (user): Session => ({ user, csrf: csrfOf(token) }))
})

/** Signs in with `token`: the user, and the session cookie to set; `Unauthorized` when it does not verify. */
export const signIn = (token: string) =>
  Effect.gen(function*() {
    const auth = yield* StreamAuthentication
    const request = yield* HttpServerRequest.HttpServerRequest
    const user = yield* auth.accessToken(Redacted.make(token))
    return {
      user,
      setCookie: (response: HttpServerResponse.HttpServerResponse) =>
        response.pipe(
          HttpServerResponse.unsafeSetCookie(sessionCookie, token, cookieOptions(request, lifetimeOf(token))),
          HttpServerResponse.unsafeSetCookie(loginCookie, "", cookieOptions(request, 0))
        )
    }
  })

/** Clears the session cookie. */
export const signOut = (response: HttpServerResponse.HttpServerResponse) =>
  Effect.map(HttpServerRequest.HttpServerRequest, (request) =>
    HttpServerResponse.unsafeSetCookie(response, sessionCookie, "", cookieOptions(request, 0)))

/**
 * The sign-in form's CSRF secret: the request's login cookie, or a new one (with the response setting it), so that
 * a page of another site cannot sign a browser in as someone else.
 */
export const loginSecret = Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
  const existing = request.cookies[loginCookie]
  if (existing !== undefined && /^[A-Za-z0-9_-]{32,64}$/.test(existing)) {
    return { secret: existing, set: (response: HttpServerResponse.HttpServerResponse) => response }
  }
  const secret = randomBytes(24).toString("base64url")
  return {
    secret,
    set: (response: HttpServerResponse.HttpServerResponse) =>
      HttpServerResponse.unsafeSetCookie(response, loginCookie, secret, cookieOptions(request, 3600))
  }
})
