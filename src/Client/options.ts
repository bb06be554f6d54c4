import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Either, Option, Schema } from "effect"
import { decodeJwt } from "jose"

/** Where the service is and how to authenticate: a bearer `token`, and/or extra `headers` (an API key …). */
export interface ClientOptions {
  /** e.g. `http://127.0.0.1:8080` */
  readonly baseUrl: string
  readonly token?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
}

export const authenticate = (options: ClientOptions) =>
  HttpClient.mapRequest((request: HttpClientRequest.HttpClientRequest) => {
    let out = options.token === undefined ? request : HttpClientRequest.bearerToken(request, options.token)
    if (options.headers !== undefined) out = HttpClientRequest.setHeaders(out, options.headers)
    return out
  })

const TokenSub = Schema.Struct({ sub: Schema.String.pipe(Schema.minLength(1)) })

/**
 * The `sub` of a JWT, read without verifying it (the server verifies): only to learn which worker ids the token
 * may act as. None when `token` is not a JWT with a `sub`.
 */
export const subOf = (token: string): Option.Option<string> =>
  Either.try(() => decodeJwt(token)).pipe(
    Either.flatMap(Schema.decodeUnknownEither(TokenSub)),
    Either.match({ onLeft: () => Option.none(), onRight: (claims) => Option.some(claims.sub) })
  )

