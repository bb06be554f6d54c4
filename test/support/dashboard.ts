import { Deferred, Effect } from "effect"
import { makeLatch } from "./latch.js"

/** The dashboard as a browser uses it over HTTP: its sign-in form, its pages' live URLs and their event streams. */

/**
 * Signs in at `base` with `bearer` as a browser does (the sign-in form's CSRF token and login cookie, then the form
 * POSTed): answers the `cookie` header of the session (`jobwatch_dashboard=…`).
 */
export const signInAt = (base: string, bearer: string) =>
  Effect.promise(async () => {
    const page = await fetch(`${base}/dashboard/login`)
    const login = /jobwatch_dashboard_login=[^;]+/.exec(page.headers.get("set-cookie") ?? "")?.[0]
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1]
    if (login === undefined || csrf === undefined) throw new Error("the sign-in form has no CSRF token or login cookie")
    const answer = await fetch(`${base}/dashboard/login`, {
      method: "POST",
      redirect: "manual",
      body: new URLSearchParams({ _csrf: csrf, token: bearer, next: "/dashboard" }).toString(),
      headers: { cookie: login, "content-type": "application/x-www-form-urlencoded" }
    })
    await answer.text()
    const session = /jobwatch_dashboard=[^;]+/.exec(answer.headers.get("set-cookie") ?? "")?.[0]
    if (answer.status !== 303 || session === undefined) throw new Error(`sign-in answered ${answer.status}`)
    return session
  })

/** The live stream's URL (path and query) a page connects to: its `sse-connect`, unescaped. */
export const liveUrlOf = (page: string) => {
  const url = /sse-connect="([^"]+)"/.exec(page)?.[1]
  if (url === undefined) throw new Error("the page has no live stream")
  return url.replaceAll("&amp;", "&")
}

/** A message of an event stream, as an `EventSource` dispatches it. */
export interface SseMessage {
  readonly id: string
  readonly event: string
  readonly data: string
}

/**
 * An SSE parser as the HTML standard writes it (lines end at CRLF, LF or CR; a blank line dispatches; `data` lines
 * join with LF; one space after the colon is dropped; a message without data is not dispatched). Feed it text as it
 * arrives; it keeps the last event id across messages, as `EventSource` does.
 */
export const makeSseParser = (onMessage: (message: SseMessage) => void) => {
  let pending = ""
  let lastId = ""
  let event = ""
  let data: Array<string> = []
  const line = (text: string) => {
    if (text === "") {
      if (data.length > 0) onMessage({ id: lastId, event: event === "" ? "message" : event, data: data.join("\n") })
      event = ""
      data = []
      return
    }
    if (text.startsWith(":")) return
    const colon = text.indexOf(":")
    const field = colon === -1 ? text : text.slice(0, colon)
    let value = colon === -1 ? "" : text.slice(colon + 1)
    if (value.startsWith(" ")) value = value.slice(1)
    if (field === "data") data.push(value)
    else if (field === "event") event = value
    else if (field === "id" && !value.includes("\u0000")) lastId = value
  }
  return (chunk: string) => {
    pending += chunk
    const ends = /\r\n|\r|\n/g
    let start = 0
    for (let m = ends.exec(pending); m !== null; m = ends.exec(pending)) {
      // a CR at the end may be the first half of a CRLF: wait for the next chunk
      if (m[0] === "\r" && m.index === pending.length - 1) break
      line(pending.slice(start, m.index))
      start = m.index + m[0].length
    }
    pending = pending.slice(start)
  }
}

/**
 * `GET url` with `headers` (a session cookie, a `last-event-id`), read as it arrives: the raw text, the messages
 * parsed, `status` once the response came, `ended` when the server ended it (or the connection broke: `error`).
 * `until` waits (up to 20 s) until `check` holds; `close` leaves, as a closed tab does (also at the scope's end).
 */
export const openLive = (url: string, headers: Record<string, string>) =>
  Effect.gen(function*() {
    const status = yield* Deferred.make<number>()
    const ended = yield* Deferred.make<{ readonly error?: string }>()
    const messages: Array<SseMessage> = []
    let raw = ""
    const latch = makeLatch()
    const notify = latch.notify
    const parse = makeSseParser((message) => messages.push(message))
    const controller = new AbortController()
    yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
    void (async () => {
      try {
        const response = await fetch(url, { headers, signal: controller.signal })
        Deferred.unsafeDone(status, Effect.succeed(response.status))
        const reader = response.body!.getReader()
        const decoder = new TextDecoder()
        while (true) {
          const { done, value } = await reader.read()
          if (done) break
          const text = decoder.decode(value, { stream: true })
          raw += text
          parse(text)
          notify()
        }
        Deferred.unsafeDone(ended, Effect.succeed({}))
      } catch (error) {
        Deferred.unsafeDone(status, Effect.succeed(0))
        Deferred.unsafeDone(ended, Effect.succeed({ error: String(error) }))
      }
      notify()
    })()
    const until = (what: string, check: () => boolean) =>
      latch.until(check, () => new Error(`not so after 20 s: ${what}; received ${raw.slice(-2000)}`)).pipe(Effect.asVoid)
    return {
      status,
      ended,
      messages,
      raw: () => raw,
      /** The id of the last message dispatched (what a reconnecting `EventSource` sends as `Last-Event-ID`). */
      lastId: () => messages.at(-1)?.id,
      until,
      close: () => controller.abort()
    }
  })

/** How often `<tr id="<prefix><key>"` begins in each message's data, by key (a row of the jobs list or a timeline). */
export const rowCounts = (messages: ReadonlyArray<SseMessage>, prefix: "job-" | "event-") => {
  const counts = new Map<string, number>()
  const pattern = new RegExp(`<tr id="${prefix}([^"]+)"`, "g")
  for (const message of messages) {
    for (const m of message.data.matchAll(pattern)) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1)
  }
  return counts
}
