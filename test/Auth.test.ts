import { assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Layer, Option, Redacted } from "effect"
import * as jose from "jose"
import * as Fs from "node:fs/promises"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Auth from "../src/Auth.js"
import { JobWatchConfig } from "../src/Config.js"
import { raw, serverLayer, token } from "./support/http.js"
import { repoPath, runNode } from "./support/processes.js"
import { tempDir } from "./support/service.js"
import { databaseUrl, dropSchema, freshSchema } from "./support/TestDb.js"

const keys = (overrides: Partial<Auth.JwtKeys>): Auth.JwtKeys => ({
  secret: Option.none(),
  publicKey: Option.none(),
  jwksUrl: Option.none(),
  generated: false,
  ...overrides
})

const refusal = (verify: ReturnType<typeof Auth.makeVerifier>, token: string) =>
  Effect.flip(verify(token)).pipe(Effect.map((error) => error.message))

const secret = new TextEncoder().encode("0123456789abcdef0123456789abcdef")

/** An HS256 token of `claims` signed with `secret`, shaped by `build` (sub, exp, iat …). */
const signed = (claims: Record<string, unknown>, build: (jwt: jose.SignJWT) => jose.SignJWT) =>
  Effect.promise(() => build(new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256" })).sign(secret))

describe("Auth", () => {
  it.effect("HS256: sub and roles (a list of strings); unknown roles are dropped", () =>
    Effect.gen(function*() {
      const secret = new TextEncoder().encode("0123456789abcdef0123456789abcdef")
      const verify = Auth.makeVerifier(keys({ secret: Option.some(Redacted.make(secret)) }))
      const minted = yield* Auth.mint(secret, { sub: "alice", roles: ["worker"], ttlSeconds: 60 })
      const alice = yield* verify(minted)
      assert.strictEqual(alice.sub, "alice")
      assert.deepStrictEqual(alice.roles, ["worker"])
      assert.isTrue(alice.isWorker)
      assert.isFalse(alice.isAdmin)
      assert.strictEqual(alice.ownerScope, "alice")
      const listed = yield* Effect.promise(() =>
        new jose.SignJWT({ roles: ["admin", "superuser"] }).setProtectedHeader({ alg: "HS256" }).setSubject("root")
          .setExpirationTime("1m").sign(secret)
      )
      const root = yield* verify(listed)
      assert.deepStrictEqual(root.roles, ["admin"])
      assert.isUndefined(root.ownerScope)
      assert.match(yield* refusal(verify, ""), /missing bearer token/)
      // an RS256 token is refused when only a secret is configured
      const { privateKey } = yield* Effect.promise(() => jose.generateKeyPair("RS256"))
      const rs = yield* Effect.promise(() =>
        new jose.SignJWT({}).setProtectedHeader({ alg: "RS256" }).setSubject("x").setExpirationTime("1m").sign(privateKey)
      )
      assert.match(yield* refusal(verify, rs), /refused/)
    }))

  it.effect("a PEM public key verifies RS256 and ES256 tokens of its type; HS256 is refused without a secret", () =>
    Effect.gen(function*() {
      for (const alg of ["RS256", "ES256"] as const) {
        const pair = yield* Effect.promise(() => jose.generateKeyPair(alg, { extractable: true }))
        const pem = yield* Effect.promise(() => jose.exportSPKI(pair.publicKey))
        const verify = Auth.makeVerifier(keys({ publicKey: Option.some(pem) }))
        const token = yield* Effect.promise(() =>
          new jose.SignJWT({ roles: ["admin"] }).setProtectedHeader({ alg }).setSubject("idp-user")
            .setExpirationTime("5m").sign(pair.privateKey)
        )
        const user = yield* verify(token)
        assert.strictEqual(user.sub, "idp-user")
        assert.isTrue(user.isAdmin)
        const other = yield* Effect.promise(() => jose.generateKeyPair(alg))
        const forged = yield* Effect.promise(() =>
          new jose.SignJWT({}).setProtectedHeader({ alg }).setSubject("eve").setExpirationTime("5m").sign(other.privateKey)
        )
        assert.match(yield* refusal(verify, forged), /signature/)
        const hs = yield* Effect.promise(() =>
          new jose.SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("eve").setExpirationTime("5m")
            .sign(new TextEncoder().encode("0123456789abcdef0123456789abcdef"))
        )
        assert.match(yield* refusal(verify, hs), /refused/)
      }
    }))

  it.live("a JWKS URL (a local server here) verifies tokens signed by its keys", () =>
    Effect.gen(function*() {
      const pair = yield* Effect.promise(() => jose.generateKeyPair("ES256", { extractable: true }))
      const jwk = { ...(yield* Effect.promise(() => jose.exportJWK(pair.publicKey))), kid: "k1", alg: "ES256", use: "sig" }
      const server = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<Http.Server>((resolve) => {
            const s = Http.createServer((_req, res) => {
              res.setHeader("content-type", "application/json")
              res.end(JSON.stringify({ keys: [jwk] }))
            })
            s.listen(0, "127.0.0.1", () => resolve(s))
          })
        ),
        (s) => Effect.promise(() => new Promise<void>((resolve) => s.close(() => resolve())))
      )
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`
      const verify = Auth.makeVerifier(keys({ jwksUrl: Option.some(url) }))
      const token = yield* Effect.promise(() =>
        new jose.SignJWT({ roles: ["worker"] }).setProtectedHeader({ alg: "ES256", kid: "k1" }).setSubject("svc")
          .setExpirationTime("5m").sign(pair.privateKey)
      )
      const user = yield* verify(token)
      assert.strictEqual(user.sub, "svc")
      assert.isTrue(user.isWorker)
    }).pipe(Effect.scoped))

  it.live("with no key configured, a secret is generated once (mode 0600) and kept across starts", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const load = (env: Record<string, string>) =>
        Auth.JwtKeysTag.pipe(
          Effect.provide(Auth.keysFromEnv.pipe(Layer.provide(JobWatchConfig.layer({ dataDir })))),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
        )
      const first = yield* load({})
      const second = yield* load({})
      assert.isTrue(first.generated)
      assert.deepStrictEqual(Redacted.value(Option.getOrThrow(first.secret)), Redacted.value(Option.getOrThrow(second.secret)))
      const stat = yield* Effect.promise(() => Fs.stat(Auth.secretPath(dataDir)))
      assert.strictEqual(stat.mode & 0o777, 0o600)
      const configured = yield* load({ JOBWATCH_JWT_SECRET: "a-configured-secret-of-32-characters!" })
      assert.isFalse(configured.generated)
      assert.strictEqual(new TextDecoder().decode(Redacted.value(Option.getOrThrow(configured.secret))), "a-configured-secret-of-32-characters!")
      const short = yield* Effect.flip(load({ JOBWATCH_JWT_SECRET: "short" }))
      assert.deepInclude({ ...short }, { _tag: "JwtConfigError", variable: "JOBWATCH_JWT_SECRET" })
    }).pipe(Effect.scoped))

  it.effect("roles must be a list of strings: a string (\"admin\") or a list holding other values refuses the token", () =>
    Effect.gen(function*() {
      const verify = Auth.makeVerifier(keys({ secret: Option.some(Redacted.make(secret)) }))
      for (const roles of ["admin", "admin worker", ["admin", 1], { admin: true }, null]) {
        const token = yield* signed({ roles }, (jwt) => jwt.setSubject("eve").setExpirationTime("1m"))
        assert.match(yield* refusal(verify, token), /roles claim must be a list of strings/, JSON.stringify(roles))
      }
      const none = yield* signed({}, (jwt) => jwt.setSubject("plain").setExpirationTime("1m"))
      assert.deepStrictEqual((yield* verify(none)).roles, [])
    }))

  it.effect("aud and iss, when configured, must match (an identity provider's tokens for another application are refused)", () =>
    Effect.gen(function*() {
      const pair = yield* Effect.promise(() => jose.generateKeyPair("ES256", { extractable: true }))
      const pem = yield* Effect.promise(() => jose.exportSPKI(pair.publicKey))
      const verify = Auth.makeVerifier(keys({
        publicKey: Option.some(pem),
        audience: ["jobwatch", "jobwatch-staging"],
        issuer: ["https://idp.example.com/"]
      }))
      const sign = (claims: { aud?: string | ReadonlyArray<string>; iss?: string }) =>
        Effect.promise(() => {
          const jwt = new jose.SignJWT({ roles: ["admin"] }).setProtectedHeader({ alg: "ES256" }).setSubject("idp-user")
            .setExpirationTime("5m")
          if (claims.aud !== undefined) jwt.setAudience([...(typeof claims.aud === "string" ? [claims.aud] : claims.aud)])
          if (claims.iss !== undefined) jwt.setIssuer(claims.iss)
          return jwt.sign(pair.privateKey)
        })
      const iss = "https://idp.example.com/"
      assert.strictEqual((yield* verify(yield* sign({ aud: "jobwatch", iss }))).sub, "idp-user")
      assert.strictEqual((yield* verify(yield* sign({ aud: ["billing", "jobwatch-staging"], iss }))).sub, "idp-user")
      assert.match(yield* refusal(verify, yield* sign({ aud: "billing", iss })), /not for this service/)
      assert.match(yield* refusal(verify, yield* sign({ iss })), /aud/)
      assert.match(yield* refusal(verify, yield* sign({ aud: "jobwatch", iss: "https://evil.example.com/" })), /issuer/)
      assert.match(yield* refusal(verify, yield* sign({ aud: "jobwatch" })), /iss/)
      // unset: not checked
      const open = Auth.makeVerifier(keys({ publicKey: Option.some(pem) }))
      assert.strictEqual((yield* open(yield* sign({ aud: "billing" }))).sub, "idp-user")
    }))

  it.effect("iat in the future is refused beyond a 60 s clock skew; with JOBWATCH_JWT_MAX_TTL a longer lifetime or no iat is", () =>
    Effect.gen(function*() {
      const now = Math.floor(Date.now() / 1000)
      const at = (iat: number | undefined, exp: number) =>
        signed({}, (jwt) => (iat === undefined ? jwt : jwt.setIssuedAt(iat)).setSubject("u").setExpirationTime(exp))
      const verify = Auth.makeVerifier(keys({ secret: Option.some(Redacted.make(secret)) }))
      assert.match(yield* refusal(verify, yield* at(now + 3600, now + 7200)), /issued in the future/)
      assert.match(yield* refusal(verify, yield* at(now + 600, now + 7200)), /issued in the future/)
      assert.strictEqual((yield* verify(yield* at(now + 20, now + 600))).sub, "u")
      assert.strictEqual((yield* verify(yield* at(undefined, now + 600))).sub, "u")

      const capped = keys({ secret: Option.some(Redacted.make(secret)), maxTtl: Duration.hours(1) })
      const strict = Auth.makeVerifier(capped)
      assert.match(yield* refusal(strict, yield* at(now, now + 2 * 3600)), /lifetime/)
      assert.match(yield* refusal(strict, yield* at(undefined, now + 600)), /iat/)
      assert.strictEqual((yield* strict(yield* at(now, now + 1800))).sub, "u")
      // mintFor signs what the verifier takes: its lifetime shortened to the maximum
      const minted = yield* Auth.mintFor(capped, secret, { sub: "m", ttlSeconds: 7 * 24 * 3600 })
      const claims = jose.decodeJwt(minted)
      assert.strictEqual(claims.exp! - claims.iat!, 3600)
      assert.strictEqual((yield* strict(minted)).sub, "m")
    }))

  it.live("keysFromEnv refuses unusable settings with a JwtConfigError naming the variable, in one line", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const pair = yield* Effect.promise(() => jose.generateKeyPair("RS256", { extractable: true }))
      const pem = yield* Effect.promise(() => jose.exportSPKI(pair.publicKey))
      const load = (env: Record<string, string>) =>
        Auth.JwtKeysTag.pipe(
          Effect.provide(Auth.keysFromEnv.pipe(Layer.provide(JobWatchConfig.layer({ dataDir })))),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
        )
      const refused: ReadonlyArray<readonly [Record<string, string>, string]> = [
        [{ JOBWATCH_JWT_SECRET: "tiny-secret-9" }, "JOBWATCH_JWT_SECRET"],
        [{ JOBWATCH_JWT_SECRET: "   " }, "JOBWATCH_JWT_SECRET"],
        [{ JOBWATCH_JWT_PUBLIC_KEY: pem }, "JOBWATCH_JWT_AUDIENCE"],
        [{ JOBWATCH_JWKS_URL: "https://idp.example.com/.well-known/jwks.json" }, "JOBWATCH_JWT_AUDIENCE"],
        [{ JOBWATCH_JWT_PUBLIC_KEY: "not a key", JOBWATCH_JWT_AUDIENCE: "jobwatch" }, "JOBWATCH_JWT_PUBLIC_KEY"],
        [{ JOBWATCH_JWKS_URL: "ftp://idp.example.com/jwks", JOBWATCH_JWT_AUDIENCE: "jobwatch" }, "JOBWATCH_JWKS_URL"],
        [{ JOBWATCH_JWKS_URL: "not a url", JOBWATCH_JWT_AUDIENCE: "jobwatch" }, "JOBWATCH_JWKS_URL"],
        [{ JOBWATCH_JWT_AUDIENCE: " , " }, "JOBWATCH_JWT_AUDIENCE"],
        [{ JOBWATCH_JWT_ISSUER: "," }, "JOBWATCH_JWT_ISSUER"],
        [{ JOBWATCH_JWT_MAX_TTL: "soon" }, "JOBWATCH_JWT_MAX_TTL"],
        [{ JOBWATCH_JWT_MAX_TTL: "0s" }, "JOBWATCH_JWT_MAX_TTL"]
      ]
      for (const [env, variable] of refused) {
        const error = yield* Effect.flip(load(env))
        assert.deepInclude({ ...error }, { _tag: "JwtConfigError", variable }, JSON.stringify(env))
        assert.notInclude(error.message, "\n")
        assert.isTrue(error.message.startsWith(variable), error.message)
        assert.notInclude(error.message, "tiny-secret-9")
      }
      const any = yield* load({ JOBWATCH_JWT_PUBLIC_KEY: pem, JOBWATCH_JWT_AUDIENCE: "any" })
      assert.isUndefined(any.audience)
      const all = yield* load({
        JOBWATCH_JWT_PUBLIC_KEY: pem,
        JOBWATCH_JWT_AUDIENCE: "jobwatch, jobwatch-staging",
        JOBWATCH_JWT_ISSUER: "https://idp.example.com/",
        JOBWATCH_JWT_MAX_TTL: "1h"
      })
      assert.deepStrictEqual(all.audience, ["jobwatch", "jobwatch-staging"])
      assert.deepStrictEqual(all.issuer, ["https://idp.example.com/"])
      assert.isTrue(Duration.equals(all.maxTtl!, Duration.hours(1)))
      assert.isTrue(Option.isNone(all.secret))
    }).pipe(Effect.scoped))

  layer(serverLayer(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("the Authorization scheme must be Bearer (Digest, Basic or none with a JWT are 401) on HTTP, SSE and RPC", () =>
      Effect.gen(function*() {
        const bearer = yield* token("scheme-user")
        for (const authorization of [`Digest ${bearer}`, `Basic  ${bearer}`, `Token ${bearer}`, `xxxxxxx${bearer}`, bearer]) {
          for (const path of ["/v1/jobs", "/v1/events"]) {
            const answer = yield* raw("GET", path, { headers: { authorization } })
            assert.strictEqual(answer.status, 401, `${path} ${authorization.slice(0, 8)}`)
            assert.deepInclude(answer.body, { _tag: "Unauthorized" })
            assert.match(answer.body.message, /must be Bearer/)
          }
        }
        assert.strictEqual((yield* raw("GET", "/v1/jobs", { headers: { authorization: `Bearer ${bearer}` } })).status, 200)
        assert.strictEqual((yield* raw("GET", "/v1/jobs", { headers: { authorization: `bearer  ${bearer}` } })).status, 200)
        const rpc = yield* raw("POST", "/rpc", {
          headers: { authorization: `Digest ${bearer}`, "content-type": "application/ndjson" },
          body: `${JSON.stringify({ _tag: "Request", id: "1", tag: "JobList", payload: {}, headers: [] })}\n`
        })
        assert.include(JSON.stringify(rpc.body), "must be Bearer")
      }))
  })

  it.live("npm run token and npm start refuse a JWT secret under 32 characters: one line, exit 1; token mints what the service takes", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const schema = freshSchema()
      yield* Effect.addFinalizer(() => dropSchema(schema))
      const short = { JOBWATCH_JWT_SECRET: "tiny-secret-9", JOBWATCH_DATA_DIR: dataDir }
      const good = "a-configured-secret-of-32-characters!"
      const [token, start, minted] = yield* Effect.all([
        runNode(repoPath("src/token.ts"), ["--sub", "alice"], { env: short }),
        runNode(repoPath("src/main.ts"), [], { env: { ...short, DATABASE_URL: databaseUrl(), JOBWATCH_SCHEMA: schema, PORT: "0" } }),
        runNode(repoPath("src/token.ts"), ["--sub", "box", "--role", "worker", "--ttl", "30m"], {
          env: {
            JOBWATCH_JWT_SECRET: good,
            JOBWATCH_JWT_AUDIENCE: "jobwatch-api",
            JOBWATCH_JWT_ISSUER: "https://jobwatch.example.com/",
            JOBWATCH_JWT_MAX_TTL: "1h",
            JOBWATCH_DATA_DIR: dataDir
          }
        })
      ], { concurrency: "unbounded" })

      assert.strictEqual(token.code, 1, token.stderr)
      assert.strictEqual(token.stdout, "")
      assert.match(token.stderr, /^JOBWATCH_JWT_SECRET must be at least 32 characters[^\n]*\n$/)

      assert.strictEqual(start.code, 1, start.stderr)
      assert.match(`${start.stdout}${start.stderr}`, /JOBWATCH_JWT_SECRET must be at least 32 characters/)
      assert.notInclude(`${start.stdout}${start.stderr}`, "tiny-secret-9")
      assert.notInclude(start.stdout, "Listening on")

      assert.strictEqual(minted.code, 0, minted.stderr)
      const user = yield* Auth.makeVerifier(keys({
        secret: Option.some(Redacted.make(new TextEncoder().encode(good))),
        audience: ["jobwatch-api"],
        issuer: ["https://jobwatch.example.com/"],
        maxTtl: Duration.hours(1)
      }))(minted.stdout.trim())
      assert.deepStrictEqual([user.sub, user.roles], ["box", ["worker"]])
    }).pipe(Effect.scoped), { timeout: 90_000 })
})
