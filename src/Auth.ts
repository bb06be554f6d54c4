import { Config, Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import * as jose from "jose"
import { createPublicKey, randomBytes } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { Authentication, StreamAuthentication } from "./Api.js"
import { RpcAuthentication } from "./Rpcs.js"
import { JobWatchConfig } from "./Config.js"
import { Role, Unauthorized, User } from "./Domain/Auth.js"
import { isStorableText } from "./internal/validate.js"

/**
 * How tokens are verified: an HS256 secret, and optionally a PEM public key or a JWKS URL for asymmetric
 * algorithms (RS256, ES256, PS256, EdDSA).
 */
export interface JwtKeys {
  readonly secret: Option.Option<Redacted.Redacted<Uint8Array>>
  readonly publicKey: Option.Option<string>
  readonly jwksUrl: Option.Option<string>
  /** Whether `secret` was generated and kept in the data directory (no secret was configured). */
  readonly generated: boolean
}

export class JwtKeysTag extends Context.Tag("jobwatch/JwtKeys")<JwtKeysTag, JwtKeys>() {}

const asymmetric = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]

const Claims = Schema.Struct({
  // sub becomes the owner of jobs: text PostgreSQL can store (no NUL, no unpaired surrogate)
  sub: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200), Schema.filter(isStorableText)),
  roles: Schema.optional(Schema.Union(Schema.Array(Schema.String), Schema.String))
})
const decodeClaims = Schema.decodeUnknownOption(Claims)

const rolesOf = (roles: ReadonlyArray<string> | string | undefined): ReadonlyArray<Role> => {
  const list = roles === undefined ? [] : typeof roles === "string" ? roles.split(/[\s,]+/) : roles
  return [...new Set(list.filter((role): role is Role => Schema.is(Role)(role)))]
}

/** A token's verifier: signature, algorithm, `exp` (required) and `nbf`, then `sub` and `roles`. */
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
  return (token: string): Effect.Effect<User, Unauthorized> =>
    Effect.gen(function*() {
      if (token.trim() === "") {
        return yield* new Unauthorized({ message: "missing bearer token: send Authorization: Bearer <JWT>" })
      }
      const { payload } = yield* Effect.tryPromise({
        try: () => jose.jwtVerify(token, keyFor, { algorithms, requiredClaims: ["exp", "sub"] }),
        catch: (error) =>
          new Unauthorized({
            message: error instanceof jose.errors.JWTExpired
              ? "the token has expired"
              : error instanceof jose.errors.JWSSignatureVerificationFailed
              ? "the token's signature does not verify"
              : `the token was refused: ${error instanceof Error ? error.message : String(error)}`
          })
      })
      const claims = decodeClaims(payload)
      if (Option.isNone(claims)) return yield* new Unauthorized({ message: "the token has no valid sub claim" })
      return new User({ sub: claims.value.sub, roles: rolesOf(claims.value.roles) })
    })
}

/** The token of an `Authorization: Bearer <token>` header ("" when there is none). */
export const bearerOf = (authorization: string | undefined) => {
  const m = /^\s*bearer\s+(\S+)\s*$/i.exec(authorization ?? "")
  return m === null ? "" : m[1]!
}

/**
 * `Authentication`, `StreamAuthentication` (which also takes `?access_token=`) and `RpcAuthentication` (the
 * RPC request's `Authorization` header), by JWTs verified with `JwtKeysTag`.
 */
export const layerJwt: Layer.Layer<Authentication | StreamAuthentication | RpcAuthentication, never, JwtKeysTag> = Layer.unwrapEffect(
  Effect.map(JwtKeysTag, (keys) => {
    const verify = makeVerifier(keys)
    const check = (token: Redacted.Redacted<string>) => verify(Redacted.value(token))
    return Layer.mergeAll(
      Layer.succeed(Authentication, { bearer: check }),
      Layer.succeed(StreamAuthentication, { bearer: check, accessToken: check }),
      Layer.succeed(RpcAuthentication, RpcAuthentication.of(({ headers }) => verify(bearerOf(headers["authorization"]))))
    )
  })
)

/** Signs an HS256 token for `sub` with `roles`, valid for `ttlSeconds`. */
export const mint = (
  secret: Uint8Array,
  options: { readonly sub: string; readonly roles?: ReadonlyArray<Role> | undefined; readonly ttlSeconds: number }
) =>
  Effect.promise(() =>
    new jose.SignJWT({ roles: [...(options.roles ?? [])] })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(options.sub)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + Math.max(1, Math.round(options.ttlSeconds)))
      .sign(secret)
  )

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

/**
 * The keys from the environment: `JOBWATCH_JWT_SECRET` (HS256, at least 32 characters), `JOBWATCH_JWT_PUBLIC_KEY`
 * (PEM), `JOBWATCH_JWKS_URL`. With none of them, a secret is generated and kept in the data directory.
 */
export const keysFromEnv: Layer.Layer<JwtKeysTag, never, JobWatchConfig> = Layer.effect(
  JwtKeysTag,
  Effect.gen(function*() {
    const config = yield* JobWatchConfig
    const env = yield* Config.all({
      secret: Config.option(Config.redacted("JOBWATCH_JWT_SECRET")),
      publicKey: Config.option(Config.string("JOBWATCH_JWT_PUBLIC_KEY")),
      jwksUrl: Config.option(Config.url("JOBWATCH_JWKS_URL"))
    }).pipe(Effect.orDie)
    const configured = Option.map(env.secret, (s) => Redacted.value(s))
    if (Option.isSome(configured) && configured.value.trim().length < 32) {
      return yield* Effect.dieMessage("JOBWATCH_JWT_SECRET must be at least 32 characters")
    }
    const anyKey = Option.isSome(configured) || Option.isSome(env.publicKey) || Option.isSome(env.jwksUrl)
    const secret = Option.isSome(configured)
      ? Option.some(encodeSecret(configured.value))
      : anyKey
      ? Option.none()
      : Option.some(yield* ensureSecret(config.dataDir))
    return {
      secret: Option.map(secret, (bytes) => Redacted.make(bytes)),
      publicKey: env.publicKey,
      jwksUrl: Option.map(env.jwksUrl, (url) => url.toString()),
      generated: !anyKey
    }
  })
)
