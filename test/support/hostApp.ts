// A small Effect application of its own, embedding jobwatch: its own HttpLayerRouter with a route of its own,
// jobwatch's HTTP and RPC routes and its dashboard mounted beside it, and its own authentication (an API key header,
// not a JWT).
import { HttpLayerRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Layer, Redacted } from "effect"
import { Api, DashboardRoutes, HttpRoutes, RequestBodies, Rpcs, RpcRoutes, SocketIo, Unauthorized, User } from "../../src/index.js"
import type * as Http from "node:http"

/** The host's users, by API key. */
export const apiKeys: Readonly<Record<string, User>> = {
  "key-alice": new User({ sub: "alice", roles: [] }),
  "key-bob": new User({ sub: "bob", roles: [] }),
  "key-worker": new User({ sub: "render-service", roles: ["worker"] })
}

const lookup = (key: string | undefined) => {
  const user = key === undefined ? undefined : apiKeys[key]
  return user === undefined ? Effect.fail(new Unauthorized({ message: "send a valid x-api-key header" })) : Effect.succeed(user)
}

/** The request's `x-api-key` (the bearer token jobwatch's ports would pass is ignored). */
const fromRequest = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => lookup(request.headers["x-api-key"]))

/** The host's authentication, in jobwatch's ports (Socket.IO: the key as the handshake's `auth.token`). */
export const ApiKeyAuthentication = Layer.mergeAll(
  Layer.succeed(Api.SocketAuthentication, {
    authenticate: ({ token }) => Effect.map(lookup(token), (user) => ({ user }))
  }),
  Layer.succeed(Api.Authentication, { bearer: () => fromRequest }),
  // the access token (an EventSource's `?access_token=`, the dashboard's session cookie) is a key too
  Layer.succeed(Api.StreamAuthentication, {
    bearer: () => fromRequest,
    accessToken: (key) => Redacted.value(key) === "" ? fromRequest : lookup(Redacted.value(key))
  }),
  Layer.succeed(Rpcs.RpcAuthentication, Rpcs.RpcAuthentication.of(({ headers }) => lookup(headers["x-api-key"])))
)

/** The host's own route. */
const Hello = HttpLayerRouter.add("GET", "/hello", HttpServerResponse.text("hello from the host"))

/**
 * All the host's routes, and jobwatch's body limits (`RequestBodies`, global middleware); it still needs the jobwatch
 * services (`JobWatch.layer`) and a server.
 */
export const HostRoutes = Layer.mergeAll(Hello, HttpRoutes, RpcRoutes, DashboardRoutes, RequestBodies).pipe(
  Layer.provide(ApiKeyAuthentication)
)

/** Socket.IO on the host's own server, with the host's authentication (it needs the jobwatch services). */
export const HostSockets = (server: Http.Server) => SocketIo.layer(server).pipe(Layer.provide(ApiKeyAuthentication))
