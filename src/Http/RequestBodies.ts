import { HttpLayerRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Cause, Data, Effect, Either, Stream } from "effect"
import { JobWatchConfig } from "../Config.js"
import { InvalidInput, PayloadTooLarge, UnsupportedMediaType } from "../Domain/Errors.js"
import * as V from "../Domain/Values.js"

/** Reads a body without a length (chunked) up to `limit` bytes; `undefined` when it is longer (the rest unread). */
const readBounded = (request: HttpServerRequest.HttpServerRequest, limit: number) =>
  Effect.async<Buffer | undefined, Error>((resume) => {
    const incoming = NodeHttpServerRequest.toIncomingMessage(request)
    const chunks: Array<Buffer> = []
    let size = 0
    const done = (result: Effect.Effect<Buffer | undefined, Error>) => {
      incoming.off("data", onData).off("end", onEnd).off("error", onError)
      resume(result)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size <= limit) return void chunks.push(chunk)
      // stop reading (not destroy: the 413 must still be written); the answer closes the connection
      incoming.pause()
      done(Effect.succeed(undefined))
    }
    const onEnd = () => done(Effect.succeed(Buffer.concat(chunks)))
    const onError = (error: Error) => done(Effect.fail(error))
    incoming.on("data", onData).on("end", onEnd).on("error", onError)
    return Effect.sync(() => incoming.off("data", onData).off("end", onEnd).off("error", onError))
  })

/** `request` with its body already read as `text` (the original stream is consumed). */
const withBody = (request: HttpServerRequest.HttpServerRequest, text: string): HttpServerRequest.HttpServerRequest =>
  Object.create(request, {
    text: { value: Effect.succeed(text) },
    json: { get: () => (text === "" ? Effect.succeed(null) : V.parseJsonText(text)) },
    arrayBuffer: { value: Effect.succeed(new TextEncoder().encode(text).buffer) }
  })

/** Why a route could not read a body: the answer to give instead (raised where the route reads it). */
class BodyRefused extends Data.TaggedError("BodyRefused")<{ readonly response: HttpServerResponse.HttpServerResponse }> {}

/**
 * `request` as the API's routes may read it: JSON nested at most `MAX_BODY_DEPTH` levels (checked on the text,
 * before it is parsed), and no multipart or form bodies (the platform would parse them, and a malformed one fails
 * the route with a defect). A refusal fails where the route reads the body, after authentication.
 */
const readableAsJson = (request: HttpServerRequest.HttpServerRequest): HttpServerRequest.HttpServerRequest => {
  const json = request.json
  const unsupported = () =>
    new BodyRefused({
      response: HttpServerResponse.unsafeJson(
        new UnsupportedMediaType({ contentType: V.excerpt(request.headers["content-type"] ?? "", 100) }),
        { status: 415 }
      )
    })
  return Object.create(request, {
    json: {
      get: () =>
        Effect.flatMap(Effect.orElseSucceed(request.text, () => ""), (text): Effect.Effect<unknown, unknown> =>
          V.jsonTextTooDeep(text, V.MAX_BODY_DEPTH)
            ? Effect.fail(new BodyRefused({ response: refusedBody(`must not nest deeper than ${V.MAX_BODY_DEPTH} levels`) }))
            : json)
    },
    multipart: { get: () => Effect.fail(unsupported()) },
    multipartStream: { get: () => Stream.fail(unsupported()) },
    urlParamsBody: { get: () => Effect.fail(unsupported()) }
  })
}

const refusedBody = (message: string) =>
  HttpServerResponse.unsafeJson(new InvalidInput({ field: "body", message }), { status: 400 })

/** The most an error body may be: beyond it, its strings and lists are cut to excerpts. */
const MAX_ERROR_BODY = 8 * 1024

/** `value` with every string cut to an excerpt and every list to its first 20 items (error bodies are shallow). */
const excerpted = (value: unknown, depth = 0): unknown =>
  typeof value === "string"
    ? V.excerpt(value)
    : Array.isArray(value)
    ? value.slice(0, 20).map((item) => excerpted(item, depth + 1))
    : typeof value === "object" && value !== null && depth < 8
    ? Object.fromEntries(Object.entries(value).slice(0, 50).map(([key, item]) => [V.excerpt(key, 100), excerpted(item, depth + 1)]))
    : value

/**
 * An error answer echoes at most an excerpt of the input: a decode error quotes the value it refused (a 10 MB string
 * in `priority` made a 40 MB answer), so a large 4xx JSON body has its strings and lists cut.
 */
const bounded = (response: HttpServerResponse.HttpServerResponse) => {
  const body = response.body
  if (response.status < 400 || response.status >= 500 || body._tag !== "Uint8Array" || body.body.length <= MAX_ERROR_BODY) {
    return response
  }
  const parsed = V.parseJsonText(new TextDecoder().decode(body.body))
  if (Either.isLeft(parsed)) {
    return HttpServerResponse.unsafeJson({ _tag: "BadRequest", message: "the request was refused" }, { status: response.status })
  }
  return HttpServerResponse.unsafeJson(excerpted(parsed.right), { status: response.status, headers: response.headers })
}

/**
 * Request bodies before any route parses them: over `maxBodyBytes` they answer 413 (by their `content-length`, or
 * while a chunked one is read, without reading further); a JSON body that does not parse, or nests deeper than
 * `MAX_BODY_DEPTH` levels, answers 400 with a JSON error like any other decode failure; a multipart or form body
 * answers 415; and a 4xx answer quotes at most an excerpt of the input.
 */
export const RequestBodies = HttpLayerRouter.middleware(
  Effect.gen(function*() {
    const config = yield* JobWatchConfig
    const limit = config.maxBodyBytes
    const tooLarge = (size: number) =>
      HttpServerResponse.unsafeJson(new PayloadTooLarge({ field: "body", size, limit }), {
        status: 413,
        headers: { connection: "close" }
      })
    const malformed = (error: unknown) =>
      HttpServerResponse.unsafeJson({
        _tag: "HttpApiDecodeError",
        issues: [],
        message: `the body is not valid JSON: ${V.excerpt(error instanceof Error ? error.message : String(error), 200)}`
      }, { status: 400 })
    return (app) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        if (request.method === "GET" || request.method === "HEAD" || request.method === "OPTIONS") {
          return bounded(yield* app)
        }
        const declared = request.headers["content-length"]
        const length = declared === undefined ? Number.NaN : Number(declared)
        if (Number.isFinite(length) && length > limit) return tooLarge(length)
        let read = request
        if (declared === undefined && request.headers["transfer-encoding"] !== undefined) {
          const body = yield* readBounded(request, limit).pipe(Effect.orElseSucceed(() => Buffer.alloc(0)))
          if (body === undefined) return tooLarge(limit + 1)
          read = withBody(request, body.toString("utf8"))
        }
        const current = readableAsJson(read)
        const answered: Effect.Effect<HttpServerResponse.HttpServerResponse, unknown, unknown> = Effect.provideService(
          app,
          HttpServerRequest.HttpServerRequest,
          current
        )
        // a body that cannot be read fails the route (after authentication) with a defect and would answer an empty
        // 400 or a 500: say why
        const response = yield* answered.pipe(
          Effect.catchAllCause((cause) => {
            // the platform raises it as a defect of the route, not a failure
            const e = Cause.squash(cause)
            if (e instanceof BodyRefused) return Effect.succeed(e.response)
            const tagged = e as { readonly _tag?: unknown; readonly reason?: unknown } | undefined
            if (tagged?._tag !== "RequestError" || tagged.reason !== "Decode") return Effect.failCause(cause)
            return Effect.map(read.text.pipe(Effect.orElseSucceed(() => "")), (text) =>
              Either.match(V.parseJsonText(text), {
                onLeft: malformed,
                onRight: () => malformed("the body could not be read")
              }))
          })
        )
        return bounded(response) as Effect.Effect.Success<typeof app>
      }) as typeof app
  }),
  { global: true }
)
