import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Option, Redacted } from "effect"
import * as jose from "jose"
import * as Fs from "node:fs/promises"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Auth from "../src/Auth.js"
import { JobWatchConfig } from "../src/Config.js"

const keys = (overrides: Partial<Auth.JwtKeys>): Auth.JwtKeys => ({
  secret: Option.none(),
  publicKey: Option.none(),
  jwksUrl: Option.none(),
  generated: false,
  ...overrides
})

const refusal = (verify: ReturnType<typeof Auth.makeVerifier>, token: string) =>
  Effect.flip(verify(token)).pipe(Effect.map((error) => error.message))

describe("Auth", () => {
  it.effect("HS256: sub and roles (a list or a space-separated string); unknown roles are dropped", () =>
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
      const spaced = yield* Effect.promise(() =>
        new jose.SignJWT({ roles: "admin superuser" }).setProtectedHeader({ alg: "HS256" }).setSubject("root")
          .setExpirationTime("1m").sign(secret)
      )
      const root = yield* verify(spaced)
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
      const dataDir = yield* Effect.acquireRelease(
        Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "jobwatch-auth-"))),
        (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
      )
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
      const short = yield* Effect.exit(load({ JOBWATCH_JWT_SECRET: "short" }))
      assert.isTrue(short._tag === "Failure" && String(short.cause).includes("at least 32"))
    }).pipe(Effect.scoped))
})
