import { Data, Duration, Effect, Option, Redacted, Schema } from "effect"
import * as Auth from "../Auth.js"
import { parseDuration } from "../Config.js"
import { Role } from "../Domain/Auth.js"

/** A command line that cannot be followed: exit 2. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/**
 * A bearer token for `sub` with `roles`, valid for `ttl`, signed with JOBWATCH_JWT_SECRET or the secret `npm start`
 * keeps in the data directory (created if there is none yet): what `npm run token` and `jobwatch token` print. It
 * refuses what the service would refuse (a role it does not know, a TTL over JOBWATCH_JWT_MAX_TTL).
 */
export const mintToken = (values: { readonly sub: string; readonly roles: ReadonlyArray<string>; readonly ttl: string }) =>
  Effect.gen(function*() {
    const sub = values.sub.trim()
    if (sub === "") return yield* new UsageError({ message: "--sub must not be empty" })
    const roles: Array<Role> = []
    for (const role of values.roles) {
      if (!Schema.is(Role)(role)) return yield* new UsageError({ message: `unknown role ${role}: worker or admin` })
      roles.push(role)
    }
    const ttl = parseDuration(values.ttl)
    if (Option.isNone(ttl) || Duration.toSeconds(ttl.value) < 1) {
      return yield* new UsageError({ message: "--ttl must be a duration such as 15m, 1h or 7d" })
    }
    const keys = yield* Auth.JwtKeysTag
    if (keys.maxTtl !== undefined && Duration.greaterThan(ttl.value, keys.maxTtl)) {
      return yield* new UsageError({
        message: `--ttl ${values.ttl} is longer than JOBWATCH_JWT_MAX_TTL (${Duration.format(keys.maxTtl)}): the service would refuse the token`
      })
    }
    if (Option.isNone(keys.secret)) {
      return yield* new Auth.JwtConfigError({
        variable: "JOBWATCH_JWT_SECRET",
        message: "tokens are signed with JOBWATCH_JWT_SECRET: with only JOBWATCH_JWT_PUBLIC_KEY or JOBWATCH_JWKS_URL set, " +
          "they come from the identity provider"
      })
    }
    return yield* Auth.mintFor(keys, Redacted.value(keys.secret.value), { sub, roles, ttlSeconds: Duration.toSeconds(ttl.value) })
  })
