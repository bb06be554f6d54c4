import { HttpApiMiddleware, HttpApiSecurity } from "@effect/platform"
import { Context, type Effect } from "effect"
import type { User } from "../Domain/Auth.js"
import { CurrentUser, Forbidden, Unauthorized } from "../Domain/Auth.js"
import { TooManyRequests } from "../Domain/Errors.js"

/**
 * The authentication port: a bearer token in, the `CurrentUser` out, `Unauthorized` (401) otherwise. jobwatch's
 * own implementation verifies JWTs (`Auth.ts`); an embedding application provides its own layer instead.
 */
export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("jobwatch/Authentication", {
  failure: Unauthorized,
  provides: CurrentUser,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

/**
 * Authentication of the event streams: the bearer token in the header, or (a browser's `EventSource` cannot send
 * headers) in the `access_token` query parameter, on these endpoints only.
 */
export class StreamAuthentication extends HttpApiMiddleware.Tag<StreamAuthentication>()("jobwatch/StreamAuthentication", {
  failure: Unauthorized,
  provides: CurrentUser,
  security: {
    bearer: HttpApiSecurity.bearer,
    accessToken: HttpApiSecurity.apiKey({ key: "access_token", in: "query" })
  }
}) {}

/**
 * The worker endpoints need the `worker` role (or `admin`): checked right after authentication, before the
 * request's body is read, so that a caller without the role gets 403 whatever it sent.
 */
export class WorkerRole extends HttpApiMiddleware.Tag<WorkerRole>()("jobwatch/WorkerRole", { failure: Forbidden }) {}

/**
 * The caller's request rate (429 `TooManyRequests` with `Retry-After` over it): checked right after
 * authentication, before the request's body is read. The routes provide it (`Limits.ts`).
 */
export class RateLimit extends HttpApiMiddleware.Tag<RateLimit>()("jobwatch/RateLimit", { failure: TooManyRequests }) {}

/** What a Socket.IO handshake offers to authenticate with: `auth.token`, or an `Authorization` header. */
export interface SocketHandshake {
  readonly token: string | undefined
  readonly authorization: string | undefined
}

/**
 * The Socket.IO authentication port: the handshake in, the user out (and when its credentials expire, in epoch
 * milliseconds: the socket is dropped then), `Unauthorized` otherwise (the client's `connect_error`). jobwatch's own
 * implementation verifies JWTs (`Auth.ts`); an embedding application provides its own layer instead.
 */
export class SocketAuthentication extends Context.Tag("jobwatch/SocketAuthentication")<SocketAuthentication, {
  readonly authenticate: (
    handshake: SocketHandshake
  ) => Effect.Effect<{ readonly user: User; readonly expiresAt?: number | undefined }, Unauthorized>
}>() {}
