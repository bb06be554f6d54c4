import { Effect } from "effect"
import ipaddr from "ipaddr.js"
import { createHmac, randomBytes } from "node:crypto"
import * as Dns from "node:dns"
import type { LookupFunction } from "node:net"
import { isIP } from "node:net"
import { InvalidInput } from "../Domain/Errors.js"
import { WebhookTargetRefused } from "../Domain/Webhook.js"
import { UrlText } from "../Domain/Requests.js"
import { decodeField } from "../internal/invalid.js"

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

const globalUnicast = ipaddr.parseCIDR("2000::/3")
const nat64 = ipaddr.parseCIDR("64:ff9b::/96")

/** An IPv4 address from two 16-bit parts of an IPv6 address. */
const v4 = (high: number, low: number) => new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff])

/**
 * The IPv4 addresses an IPv6 address leads to, for the forms that carry one: IPv4-mapped, -translated (RFC 6145)
 * and -compatible, NAT64 (RFC 6052), 6to4 (its relay), Teredo (its server and its client). An empty list: a form
 * whose IPv4 cannot be known (NAT64's local-use 64:ff9b:1::/48, RFC 8215: the operator chooses the layout);
 * `undefined`: none is carried.
 */
const carriedIPv4 = (address: ipaddr.IPv6): ReadonlyArray<ipaddr.IPv4> | undefined => {
  const p = address.parts
  const last = () => v4(p[6]!, p[7]!)
  switch (address.range()) {
    case "ipv4Mapped":
    case "rfc6145":
      return [last()]
    case "rfc6052":
      return address.match(nat64) ? [last()] : []
    case "6to4":
      return [v4(p[1]!, p[2]!)]
    case "teredo":
      // the client's address is stored inverted
      return [v4(p[2]!, p[3]!), v4(~p[6]! & 0xffff, ~p[7]! & 0xffff)]
    case "unicast":
      // IPv4-compatible (::a.b.c.d, deprecated): ipaddr.js has no range for it
      return p.slice(0, 6).every((part) => part === 0) ? [last()] : undefined
    default:
      return undefined
  }
}

/**
 * Whether `address` (an IP literal) is one a webhook may reach: a public unicast address. ipaddr.js classifies it
 * against every IANA special-purpose block (loopback, private, link-local, carrier-grade NAT, documentation,
 * benchmarking, reserved, multicast, ...); an IPv6 address that leads to an IPv4 one (mapped, compatible, NAT64,
 * 6to4, Teredo) is judged by that IPv4 address, and any other must be global unicast (2000::/3).
 */
export const isPublicAddress = (address: string): boolean => {
  // only the standard notations (ipaddr.js also reads forms like 1.2.3 or 0x7f.1)
  if (isIP(address) === 0 || !ipaddr.isValid(address)) return false
  const parsed = ipaddr.parse(address)
  if (parsed.kind() === "ipv4") return parsed.range() === "unicast"
  const v6 = ipaddr.IPv6.parse(address)
  const carried = carriedIPv4(v6)
  if (carried !== undefined) return carried.length > 0 && carried.every((a) => a.range() === "unicast")
  return v6.range() === "unicast" && v6.match(globalUnicast)
}

/** Whether `address` (an IP literal, or anything else) is one a webhook must not reach. */
export const isPrivateAddress = (address: string): boolean => !isPublicAddress(address)

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
    const url = yield* decodeField(UrlText, field)(value)
    const problem = urlProblem(url)
    if (problem?.kind === "scheme") return yield* new WebhookTargetRefused({ field, message: `${field} ${problem.message}` })
    if (problem !== undefined) return yield* new InvalidInput({ field, message: problem.message })
    if (allowPrivate) return url
    const parsed = new URL(url)
    const bad = yield* Effect.tryPromise(() => privateTarget(parsed)).pipe(
      Effect.mapError(() => new InvalidInput({ field, message: `its host ${parsed.hostname} does not resolve` }))
    )
    if (bad !== undefined) {
      return yield* new WebhookTargetRefused({
        field,
        message: `${field} points into a private or reserved network (${parsed.hostname} is ${bad}, not a public address); JOBWATCH_WEBHOOK_ALLOW_PRIVATE=true allows it for development`
      })
    }
    return url
  })
