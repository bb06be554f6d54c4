import { HttpServerRequest } from "@effect/platform"
import { Config, Context, Data, Duration, Effect, Either, Layer, Option, Redacted, Schema } from "effect"
import * as jose from "jose"
import { createPublicKey, randomBytes } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { Authentication, SocketAuthentication, StreamAuthentication } from "./Api.js"
import { RpcAuthentication } from "./Rpcs.js"
import { JobWatchConfig, parseDuration } from "./Config.js"
import { Role, Unauthorized, User } from "./Domain/Auth.js"
import { isStorableText } from "./Domain/Values.js"

/**
 * How tokens are verified: an HS256 secret, and optionally a PEM public key or a JWKS URL for asymmetric
 * algorithms (RS256, ES256, PS256, EdDSA); which audiences and issuers are accepted, and the longest lifetime.
 */
export interface JwtKeys {
  readonly secret: Option.Option<Redacted.Redacted<Uint8Array>>
  readonly publicKey: Option.Option<string>
  readonly jwksUrl: Option.Option<string>
  /** Whether `secret` was generated and kept in the data directory (no secret was configured). */
  readonly generated: boolean
  /** A token's `aud` must hold one of these; unset: not checked. */
  readonly audience?: ReadonlyArray<string> | undefined
  /** A token's `iss` must be one of these; unset: not checked. */
  readonly issuer?: ReadonlyArray<string> | undefined
  /** The longest lifetime (`exp` − `iat`) a token may have; a token then needs `iat`. Unset: any. */
  readonly maxTtl?: Duration.Duration | undefined
}

export class JwtKeysTag extends Context.Tag("jobwatch/JwtKeys")<JwtKeysTag, JwtKeys>() {}

/**
 * A JWT setting of the environment that cannot be used: `variable` names it, `message` (one line, never the
 * value of a secret) says why. Start-up fails with it.
 */
export class JwtConfigError extends Data.TaggedError("JwtConfigError")<{
  readonly variable: string
  readonly message: string
}> {}

const asymmetric = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]

/** How far in the future a token's `iat` may be: the clocks of its issuer and of this service may differ. */
export const clockSkew = Duration.seconds(60)

const Claims = Schema.Struct({
  // sub becomes the owner of jobs: text PostgreSQL can store (no NUL, no unpaired surrogate)
  sub: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200), Schema.filter(isStorableText)),
  roles: Schema.optional(Schema.Array(Schema.String))
})
const decodeClaims = Schema.decodeUnknownEither(Claims)

const rolesOf = (roles: ReadonlyArray<string> | undefined): ReadonlyArray<Role> =>
  [...new Set((roles ?? []).filter((role): role is Role => Schema.is(Role)(role)))]

const refused = (message: string) => new Unauthorized({ message })

/** A readable reason for jose's refusal of a token (never the token). */
const reasonOf = (error: unknown): string => {
  if (error instanceof jose.errors.JWTExpired) return "the token has expired"
  if (error instanceof jose.errors.JWSSignatureVerificationFailed) return "the token's signature does not verify"
  if (error instanceof jose.errors.JWTClaimValidationFailed) {
    if (error.claim === "aud") return "the token is not for this service (its aud claim)"
    if (error.claim === "iss") return "the token's issuer (its iss claim) is not accepted here"
  }
  return `the token was refused: ${error instanceof Error ? error.message : String(error)}`
}

const seconds = (d: Duration.Duration) => Duration.toSeconds(d)

/**
 * A token's verifier: signature, algorithm, `exp` (required), `nbf`, `aud` and `iss` (when configured), `iat` not
 * in the future (beyond `clockSkew`), the lifetime (`exp` − `iat`) within `maxTtl`, then `sub` and `roles` (a list
 * of strings; roles other than `admin` and `worker` are ignored). Times are the wall clock's.
 */
export const makeVerifier = (keys: JwtKeys) => {
  const secret = Option.map(keys.secret, Redacted.value)
  const jwks = Option.map(keys.jwksUrl, (url) => jose.createRemoteJWKSet(new URL(url)))
  // a KeyObject verifies whichever algorithm its type allows (RSA: RS*/PS*, EC: ES*, Ed25519: EdDSA)
  const publicKey = Option.map(keys.publicKey, (pem) => createPublicKey(pem))
  const algorithms = [
    ...(Option.isSome(secret) ? ["HS256"] : []),
    ...(Option.isSome(jwks) || Option.isSome(publicKey) ? asymmetric : [])
  ]
  const keyFor: jose.JWTVerifyGetKey = async (header, token) => {
    if (header.alg === "HS256" && Option.isSome(secret)) return secret.value
    if (Option.isSome(jwks)) return jwks.value(header, token)
    if (Option.isSome(publicKey)) return publicKey.value
    throw new Error(`tokens signed with ${header.alg} are not accepted here`)
  }
  const options: jose.JWTVerifyOptions = {
    algorithms,
    requiredClaims: keys.maxTtl === undefined ? ["exp", "sub"] : ["exp", "sub", "iat"],
    ...(keys.audience === undefined ? {} : { audience: [...keys.audience] }),
    ...(keys.issuer === undefined ? {} : { issuer: [...keys.issuer] })
  }
  const maxTtl = keys.maxTtl === undefined ? undefined : seconds(keys.maxTtl)
  return (token: string): Effect.Effect<User, Unauthorized> =>
    Effect.gen(function*() {
      if (token.trim() === "") return yield* refused("missing bearer token: send Authorization: Bearer <JWT>")
      const { payload } = yield* Effect.tryPromise({
        try: () => jose.jwtVerify(token, keyFor, options),
        catch: (error) => refused(reasonOf(error))
      })
      // jose checked that iat and exp, when present, are numbers
      const now = Date.now() / 1000
      if (payload.iat !== undefined && payload.iat > now + seconds(clockSkew)) {
        return yield* refused("the token was issued in the future (its iat claim)")
      }
      if (maxTtl !== undefined && payload.exp! - payload.iat! > maxTtl) {
        return yield* refused(`the token's lifetime (exp - iat) is longer than the ${maxTtl} s this service accepts`)
      }
      const claims = decodeClaims(payload)
      if (Either.isLeft(claims)) {
        return yield* refused(
          typeof payload.sub !== "string" || payload.sub === "" || payload.sub.length > 200
            ? "the token has no valid sub claim"
            : "the token's roles claim must be a list of strings"
        )
      }
      return new User({ sub: claims.right.sub, roles: rolesOf(claims.right.roles) })
    })
}

/** The token of an `Authorization: Bearer <token>` header ("" when there is none, or another scheme). */
export const bearerOf = (authorization: string | undefined) => {
  const m = /^\s*bearer\s+(\S+)\s*$/i.exec(authorization ?? "")
  return m === null ? "" : m[1]!
}

/** The bearer token of an `Authorization` header, or why there is none (no header, or not the `Bearer` scheme). */
export const tokenOfHeader = (authorization: string | undefined): Either.Either<string, Unauthorized> => {
  if (authorization === undefined || authorization.trim() === "") {
    return Either.left(refused("missing bearer token: send Authorization: Bearer <JWT>"))
  }
  const token = bearerOf(authorization)
  return token === ""
    ? Either.left(refused("the Authorization header must be Bearer <JWT> (no other scheme is accepted)"))
    : Either.right(token)
}

/**
 * `Authentication`, `StreamAuthentication` (which also takes `?access_token=`) and `RpcAuthentication` (the
 * RPC request's `Authorization` header), by JWTs verified with `JwtKeysTag`. The HTTP ports read the request's
 * `Authorization` header themselves: the platform's bearer scheme drops its first 7 characters, whatever they are.
 */
export const layerJwt: Layer.Layer<
  Authentication | StreamAuthentication | RpcAuthentication | SocketAuthentication,
  never,
  JwtKeysTag
> = Layer.unwrapEffect(
  Effect.map(JwtKeysTag, (keys) => {
    const verify = makeVerifier(keys)
    const fromHeader = (authorization: string | undefined) => Effect.flatMap(tokenOfHeader(authorization), verify)
    const fromRequest = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => fromHeader(request.headers["authorization"]))
    return Layer.mergeAll(
      Layer.succeed(Authentication, { bearer: () => fromRequest }),
      Layer.succeed(StreamAuthentication, {
        bearer: () => fromRequest,
        // tried when the header did not authenticate: without the parameter, the header's refusal is the answer
        accessToken: (token) => Redacted.value(token) === "" ? fromRequest : verify(Redacted.value(token))
      }),
      Layer.succeed(RpcAuthentication, RpcAuthentication.of(({ headers }) => fromHeader(headers["authorization"]))),
      // the handshake's auth.token, else its Authorization header; the socket is dropped at the token's exp
      Layer.succeed(SocketAuthentication, {
        authenticate: ({ authorization, token }) => {
          const bearer = token !== undefined && token !== "" ? Either.right(token) : tokenOfHeader(authorization)
          return Effect.flatMap(bearer, (jwt) =>
            Effect.map(verify(jwt), (user) => ({ user, expiresAt: (jose.decodeJwt(jwt).exp ?? 0) * 1000 })))
        }
      })
    )
  })
)

/** Signs an HS256 token for `sub` with `roles`, valid for `ttlSeconds`, with `aud` and `iss` when given. */
export const mint = (
  secret: Uint8Array,
  options: {
    readonly sub: string
    readonly roles?: ReadonlyArray<Role> | undefined
    readonly ttlSeconds: number
    readonly audience?: string | undefined
    readonly issuer?: string | undefined
  }
) =>
  Effect.promise(() => {
    const jwt = new jose.SignJWT({ roles: [...(options.roles ?? [])] })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(options.sub)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + Math.max(1, Math.round(options.ttlSeconds)))
    if (options.audience !== undefined) jwt.setAudience(options.audience)
    if (options.issuer !== undefined) jwt.setIssuer(options.issuer)
    return jwt.sign(secret)
  })

/**
 * Signs a token that the verifier of `keys` accepts, with `secret` (HS256): its first audience and issuer, and a
 * lifetime of `ttlSeconds` shortened to `maxTtl`.
 */
export const mintFor = (
  keys: JwtKeys,
  secret: Uint8Array,
  options: { readonly sub: string; readonly roles?: ReadonlyArray<Role> | undefined; readonly ttlSeconds: number }
) =>
  mint(secret, {
    ...options,
    ttlSeconds: keys.maxTtl === undefined ? options.ttlSeconds : Math.min(options.ttlSeconds, seconds(keys.maxTtl)),
    audience: keys.audience?.[0],
    issuer: keys.issuer?.[0]
  })

/** Where a generated secret is kept (mode 0600), in the data directory. */
export const secretPath = (dataDir: string) => Path.join(dataDir, "jwt-secret")

const encodeSecret = (text: string) => new TextEncoder().encode(text.trim())

/**
 * The secret kept in `dataDir`, created (48 random bytes, base64url) when there is none yet: secure by default,
 * the same across restarts.
 */
export const ensureSecret = (dataDir: string) =>
  Effect.promise(async () => {
    const file = secretPath(dataDir)
    const existing = await Fs.readFile(file, "utf8").catch(() => undefined)
    if (existing !== undefined && existing.trim() !== "") return encodeSecret(existing)
    await Fs.mkdir(dataDir, { recursive: true })
    const created = randomBytes(48).toString("base64url")
    await Fs.writeFile(file, `${created}\n`, { mode: 0o600, flag: "wx" }).catch(async () => undefined)
    // another process may have won the race: whatever is on disk is the secret
    return encodeSecret(await Fs.readFile(file, "utf8"))
  })

/** A comma-separated list: its trimmed, non-empty items. */
const listOf = (text: string) => text.split(",").map((item) => item.trim()).filter((item) => item !== "")

const env = (name: string) =>
  Config.option(Config.string(name)).pipe(
    Effect.mapError(() => new JwtConfigError({ variable: name, message: `${name} could not be read` }))
  )

const invalid = (variable: string, message: string) => Effect.fail(new JwtConfigError({ variable, message }))

/**
 * The keys from the environment: `JOBWATCH_JWT_SECRET` (HS256, at least 32 characters), `JOBWATCH_JWT_PUBLIC_KEY`
 * (PEM), `JOBWATCH_JWKS_URL`; with none of them, a secret is generated and kept in the data directory. Then
 * `JOBWATCH_JWT_AUDIENCE` (comma-separated; required with a public key or JWKS, where `any` turns the check off),
 * `JOBWATCH_JWT_ISSUER` (comma-separated) and `JOBWATCH_JWT_MAX_TTL` (a duration). A setting that cannot be used
 * fails with `JwtConfigError`, naming it.
 */
export const keysFromEnv: Layer.Layer<JwtKeysTag, JwtConfigError, JobWatchConfig> = Layer.effect(
  JwtKeysTag,
  Effect.gen(function*() {
    const config = yield* JobWatchConfig
    const configured = Option.map(yield* env("JOBWATCH_JWT_SECRET"), (s) => s.trim())
    const publicKey = yield* env("JOBWATCH_JWT_PUBLIC_KEY")
    const jwksUrl = yield* env("JOBWATCH_JWKS_URL")
    const audience = yield* env("JOBWATCH_JWT_AUDIENCE")
    const issuer = yield* env("JOBWATCH_JWT_ISSUER")
    const maxTtl = yield* env("JOBWATCH_JWT_MAX_TTL")
    if (Option.isSome(configured) && configured.value.length < 32) {
      return yield* invalid(
        "JOBWATCH_JWT_SECRET",
        "JOBWATCH_JWT_SECRET must be at least 32 characters (a random one, e.g. from openssl rand -base64 48)"
      )
    }
    if (Option.isSome(publicKey)) {
      const parsed = Either.try(() => createPublicKey(publicKey.value))
      if (Either.isLeft(parsed)) {
        return yield* invalid("JOBWATCH_JWT_PUBLIC_KEY", "JOBWATCH_JWT_PUBLIC_KEY must be a PEM public key (-----BEGIN PUBLIC KEY-----)")
      }
    }
    if (Option.isSome(jwksUrl)) {
      const url = Either.try(() => new URL(jwksUrl.value))
      if (Either.isLeft(url) || (url.right.protocol !== "https:" && url.right.protocol !== "http:")) {
        return yield* invalid("JOBWATCH_JWKS_URL", "JOBWATCH_JWKS_URL must be an http(s) URL")
      }
    }
    const audiences = Option.map(audience, listOf)
    if (Option.isSome(audiences) && audiences.value.length === 0) {
      return yield* invalid("JOBWATCH_JWT_AUDIENCE", "JOBWATCH_JWT_AUDIENCE must list the audiences this service accepts, or be any")
    }
    const anyAudience = Option.isSome(audiences) && audiences.value.length === 1 && audiences.value[0] === "any"
    if (Option.isNone(audiences) && (Option.isSome(publicKey) || Option.isSome(jwksUrl))) {
      return yield* invalid(
        "JOBWATCH_JWT_AUDIENCE",
        "JOBWATCH_JWT_AUDIENCE must be set with JOBWATCH_JWT_PUBLIC_KEY or JOBWATCH_JWKS_URL: the audience of this " +
          "service's tokens at the identity provider (or any, to accept tokens of every application it serves)"
      )
    }
    const issuers = Option.map(issuer, listOf)
    if (Option.isSome(issuers) && issuers.value.length === 0) {
      return yield* invalid("JOBWATCH_JWT_ISSUER", "JOBWATCH_JWT_ISSUER must list the issuers this service accepts")
    }
    const ttl = Option.map(maxTtl, parseDuration)
    if (Option.isSome(ttl) && (Option.isNone(ttl.value) || Duration.toSeconds(ttl.value.value) < 1)) {
      return yield* invalid("JOBWATCH_JWT_MAX_TTL", "JOBWATCH_JWT_MAX_TTL must be a duration of at least 1 second, such as 15m or 1h")
    }
    const anyKey = Option.isSome(configured) || Option.isSome(publicKey) || Option.isSome(jwksUrl)
    const secret = Option.isSome(configured)
      ? Option.some(encodeSecret(configured.value))
      : anyKey
      ? Option.none()
      : Option.some(yield* ensureSecret(config.dataDir))
    return {
      secret: Option.map(secret, (bytes) => Redacted.make(bytes)),
      publicKey,
      jwksUrl: Option.map(jwksUrl, (url) => new URL(url).toString()),
      generated: !anyKey,
      audience: anyAudience ? undefined : Option.getOrUndefined(audiences),
      issuer: Option.getOrUndefined(issuers),
      maxTtl: Option.getOrUndefined(Option.flatten(ttl))
    }
  })
)
