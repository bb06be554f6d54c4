import { Effect } from "effect"
import { createHmac, randomBytes } from "node:crypto"
import * as Dns from "node:dns"
import type { LookupFunction } from "node:net"
import { InvalidInput } from "../Domain/Errors.js"
import { WebhookTargetRefused } from "../Domain/Webhook.js"
import * as V from "./validate.js"
import { BlockList, isIP } from "node:net"

/** A new signing secret: `whsec_` and the base64 of 32 random bytes (Standard Webhooks). */
export const makeSecret = () => `whsec_${randomBytes(32).toString("base64")}`

/**
 * Why `value` is not a signing secret a caller may give (`whsec_` and the base64 of 24 to 64 bytes), or `""`
 * when it is one.
 */
export const secretProblem = (value: string): string => {
  const key = value.startsWith("whsec_") ? value.slice(6) : undefined
  if (key === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(key) || key.length % 4 !== 0) {
    return "must be whsec_ followed by base64 (a Standard Webhooks secret)"
  }
  const bytes = Buffer.from(key, "base64").length
  return bytes < 24 || bytes > 64 ? `must hold 24 to 64 bytes, got ${bytes}` : ""
}

/**
 * The `webhook-signature` header value: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` for each secret (the key
 * is the base64 after `whsec_`), space-separated.
 */
export const signatures = (secrets: ReadonlyArray<string>, id: string, timestamp: number, body: string) =>
  secrets
    .map((secret) => {
      const key = Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64")
      return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`
    })
    .join(" ")

// addresses a webhook must never reach unless allowed: loopback, private, link-local, multicast, unspecified,
// carrier-grade NAT, and their IPv6 counterparts
const blocked = new BlockList()
for (const [net, prefix] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4]
] as const) blocked.addSubnet(net, prefix, "ipv4")
for (const [net, prefix] of [["::", 128], ["::1", 128], ["fc00::", 7], ["fe80::", 10], ["ff00::", 8]] as const) {
  blocked.addSubnet(net, prefix, "ipv6")
}

/** Whether `address` (an IP literal) is one a webhook must not reach. */
export const isPrivateAddress = (address: string): boolean => {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped !== null) return isPrivateAddress(mapped[1]!)
  const family = isIP(address)
  if (family === 4) return blocked.check(address, "ipv4")
  if (family === 6) return blocked.check(address, "ipv6")
  return true
}

/**
 * Why `url` may not be a webhook target, if it may not: `malformed` (not a URL, no host, credentials) or `scheme`
 * (a well-formed URL, but not http(s): refused like a private target). Private addresses are checked apart.
 */
export interface UrlProblem {
  readonly kind: "malformed" | "scheme"
  readonly message: string
}

/** The problem of `url` as a webhook target, or `undefined` when it has none (its address is checked apart). */
export const urlProblem = (url: string): UrlProblem | undefined => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return { kind: "malformed", message: "is not a URL" }
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return { kind: "scheme", message: "must be an http:// or https:// URL" }
  }
  if (parsed.hostname === "") return { kind: "malformed", message: "has no host" }
  if (parsed.username !== "" || parsed.password !== "") return { kind: "malformed", message: "must not carry credentials" }
  return undefined
}

const hostOf = (url: URL) => url.hostname.replace(/^\[|\]$/g, "")

/** The addresses `url`'s host resolves to (the literal itself for an IP). */
export const resolve = (url: URL): Promise<ReadonlyArray<string>> => {
  const host = hostOf(url)
  if (isIP(host) !== 0) return Promise.resolve([host])
  return Dns.promises.lookup(host, { all: true, verbatim: true }).then((all) => all.map((a) => a.address))
}

/** The first private address among those `url` resolves to, if any (a DNS failure throws). */
export const privateTarget = async (url: URL): Promise<string | undefined> =>
  (await resolve(url)).find(isPrivateAddress)

/**
 * A `lookup` for outgoing requests that refuses private addresses at connection time, so that a name that
 * resolved to a public address when checked cannot be rebound to a private one for the request.
 */
export const guardedLookup: LookupFunction = (hostname, options, callback) => {
  Dns.lookup(hostname, { ...options, all: true }, (error, addresses: Array<Dns.LookupAddress>) => {
    if (error !== null) return callback(error, "", 0)
    const bad = addresses.find((a) => isPrivateAddress(a.address))
    if (bad !== undefined) {
      return callback(Object.assign(new Error(`${hostname} resolves to the private address ${bad.address}`), { code: "EPRIVATE" }), "", 0)
    }
    if (options.all === true) return callback(null, addresses)
    return callback(null, addresses[0]!.address, addresses[0]!.family)
  })
}

/**
 * A webhook target from a request: a valid http(s) URL (`InvalidInput` otherwise) that, unless `allowPrivate`,
 * resolves to no private address (`WebhookTargetRefused`, 422).
 */
export const checkTarget = (field: string, value: unknown, allowPrivate: boolean) =>
  Effect.gen(function*() {
    const url = yield* V.text(field, value, { max: 2000 })
    const problem = urlProblem(url)
    if (problem?.kind === "scheme") return yield* new WebhookTargetRefused({ field, message: `${field} ${problem.message}` })
    if (problem !== undefined) return yield* V.invalid(field, problem.message)
    if (allowPrivate) return url
    const parsed = new URL(url)
    const bad = yield* Effect.tryPromise(() => privateTarget(parsed)).pipe(
      Effect.mapError(() => new InvalidInput({ field, message: `its host ${parsed.hostname} does not resolve` }))
    )
    if (bad !== undefined) {
      return yield* new WebhookTargetRefused({
        field,
        message: `${field} points into a private network (${parsed.hostname} is ${bad}); JOBWATCH_WEBHOOK_ALLOW_PRIVATE=true allows it for development`
      })
    }
    return url
  })
