import { Effect } from "effect"
import * as Http from "node:http"
import * as Https from "node:https"
import { isIP } from "node:net"
import { guardedLookup, isPrivateAddress } from "./security.js"

/** What one attempt came to. */
export interface Attempt {
  readonly status: number | null
  readonly error: string | null
  /** Seconds the receiver asked to wait (`Retry-After` on 429/503). */
  readonly retryAfter: number | null
  readonly durationMs: number
}

export const userAgent = "jobwatch-webhooks/1.0 (+https://www.standardwebhooks.com)"
/** A receiver's `Retry-After` is honoured up to a day. */
const MAX_RETRY_AFTER_S = 24 * 3600

/** `Retry-After`: seconds, or an HTTP date; `null` when absent or unreadable. */
export const parseRetryAfter = (value: string | undefined, now: number): number | null => {
  if (value === undefined || value.trim() === "") return null
  if (/^\d+$/.test(value.trim())) return Math.min(Number(value.trim()), MAX_RETRY_AFTER_S)
  const at = Date.parse(value)
  return Number.isFinite(at) ? Math.min(Math.max(0, Math.ceil((at - now) / 1000)), MAX_RETRY_AFTER_S) : null
}

/**
 * One POST, redirects not followed, refusing private addresses (unless allowed) at connection time. Never fails:
 * a network error, a refusal or a timeout is an attempt with an `error`. Interrupting it aborts the request.
 */
export const post = (url: string, headers: Record<string, string>, body: string, allowPrivate: boolean) =>
  Effect.async<Omit<Attempt, "durationMs">>((resume) => {
    const target = new URL(url)
    const host = target.hostname.replace(/^\[|\]$/g, "")
    // an IP literal is connected to without a lookup: it is checked here, a name by the lookup
    if (!allowPrivate && isIP(host) !== 0 && isPrivateAddress(host)) {
      resume(Effect.succeed({ status: null, error: `refused: ${host} is a private address`, retryAfter: null }))
      return
    }
    const request = (target.protocol === "https:" ? Https : Http).request(target, {
      method: "POST",
      headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
      ...(allowPrivate ? {} : { lookup: guardedLookup })
    })
    request.on("response", (response) => {
      // the body is not needed: read and drop it so that the connection can be reused
      response.resume()
      const retryAfter = response.statusCode === 429 || response.statusCode === 503
        ? parseRetryAfter(response.headers["retry-after"], Date.now())
        : null
      resume(Effect.succeed({ status: response.statusCode ?? null, error: null, retryAfter }))
    })
    request.on("error", (error) => resume(Effect.succeed({ status: null, error: error.message, retryAfter: null })))
    request.end(body)
    return Effect.sync(() => request.destroy())
  })
