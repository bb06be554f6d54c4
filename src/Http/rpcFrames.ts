import { Rpc } from "@effect/rpc"
import { Either, Exit, ParseResult, Predicate, Schema } from "effect"
import { InvalidInput } from "../Domain/Errors.js"
import { Rpcs } from "../Rpcs.js"
import { invalidOf } from "../internal/invalid.js"
import * as V from "../Domain/Values.js"

// The RPC server of @effect/rpc 0.76 trusts its frames: a request whose `headers` is not a list of pairs throws
// inside it (500), a payload that does not decode answers a defect holding the schema's text, and a frame that is
// not JSON answers a defect naming the JavaScript error. This checks every NDJSON frame of a body first: a malformed
// frame refuses the whole body (400 InvalidInput naming it), a request whose payload does not decode is answered
// here with its RPC's typed InvalidInput, and what remains is passed on, re-serialised.

/** What a body of frames comes to. */
export interface Frames {
  /** The frames to pass on to the RPC server (NDJSON). */
  readonly forward: string
  /** The answers (`Exit` frames, NDJSON) of the requests refused here, for the start of the response. */
  readonly answers: string
}

const MAX_HEADERS = 100
const idPattern = /^[0-9]{1,20}$/

/** The `InvalidInput` of a payload that did not decode: its first issue's field, and a bounded message. */
export const invalidPayload = (error: ParseResult.ParseError): InvalidInput => invalidOf(error)

const isPair = (value: unknown): value is readonly [string, string] =>
  Array.isArray(value) && value.length === 2 && typeof value[0] === "string" && typeof value[1] === "string"

const optional = (value: unknown, is: (u: unknown) => boolean) => value === undefined || is(value)
const shortString = (u: unknown) => typeof u === "string" && u.length <= 100

/** A checker of the frames of the `Rpcs` group's requests. */
export const makeFrameChecker = () => {
  const rpcs = new Map<string, {
    readonly decode: (u: unknown) => Either.Either<unknown, ParseResult.ParseError>
    readonly encodeExit: (exit: Exit.Exit<unknown, unknown>) => unknown
  }>()
  for (const [tag, rpc] of Rpcs.requests) {
    rpcs.set(tag, {
      decode: Schema.decodeUnknownEither(Schema.make(rpc.payloadSchema.ast)),
      encodeExit: Schema.encodeSync(Schema.make(Rpc.exitSchema(rpc).ast))
    })
  }

  return (text: string): Either.Either<Frames, InvalidInput> => {
    const refuse = (field: string, message: string) => Either.left(new InvalidInput({ field, message }))
    const forward: Array<string> = []
    const answers: Array<string> = []
    // requests answered here: an Ack or Interrupt of theirs is not passed on (the server would answer it again)
    const refusedIds = new Set<string>()
    const lines = text.split("\n")
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!
      if (line.trim() === "") continue
      const field = `frames[${i}]`
      if (V.jsonTextTooDeep(line, V.MAX_BODY_DEPTH)) return refuse(field, `must not nest deeper than ${V.MAX_BODY_DEPTH} levels`)
      const parsed = V.parseJsonText(line)
      if (Either.isLeft(parsed)) return refuse(field, "is not JSON (one JSON object per line)")
      const frame = parsed.right
      if (!Predicate.isRecord(frame)) return refuse(field, "must be a JSON object")
      switch (frame._tag) {
        case "Request": {
          const { headers, id, payload, sampled, spanId, tag, traceId } = frame
          if (typeof id !== "string" || !idPattern.test(id)) return refuse(`${field}.id`, "must be a request id (1 to 20 digits)")
          const rpc = typeof tag === "string" ? rpcs.get(tag) : undefined
          if (rpc === undefined) return refuse(`${field}.tag`, `must name an RPC of the group, got ${V.preview(tag)}`)
          if (!Array.isArray(headers) || headers.length > MAX_HEADERS || !headers.every(isPair)) {
            return refuse(`${field}.headers`, `must be a list of at most ${MAX_HEADERS} [name, value] pairs of strings`)
          }
          if (!optional(traceId, shortString) || !optional(spanId, shortString) || !optional(sampled, Predicate.isBoolean)) {
            return refuse(field, "has a malformed traceId, spanId or sampled")
          }
          const decoded = rpc.decode(payload)
          if (Either.isLeft(decoded)) {
            let exit: unknown
            try {
              exit = rpc.encodeExit(Exit.fail(invalidPayload(decoded.left)))
            } catch {
              return refuse(`${field}.payload`, "does not decode")
            }
            answers.push(JSON.stringify({ _tag: "Exit", requestId: id, exit }))
            refusedIds.add(id)
            continue
          }
          forward.push(JSON.stringify({ _tag: "Request", id, tag, payload, headers, traceId, spanId, sampled }))
          break
        }
        case "Ack":
        case "Interrupt": {
          const requestId = frame.requestId
          if (typeof requestId !== "string" || !idPattern.test(requestId)) {
            return refuse(`${field}.requestId`, "must be a request id (1 to 20 digits)")
          }
          if (refusedIds.has(requestId)) continue
          forward.push(JSON.stringify(frame._tag === "Ack" ? { _tag: "Ack", requestId } : { _tag: "Interrupt", requestId, interruptors: [] }))
          break
        }
        case "Eof":
        case "Ping":
          forward.push(JSON.stringify({ _tag: frame._tag }))
          break
        default:
          return refuse(`${field}._tag`, `must be Request, Ack, Interrupt, Eof or Ping, got ${V.preview(frame._tag)}`)
      }
    }
    const ndjson = (frames: ReadonlyArray<string>) => frames.map((frame) => `${frame}\n`).join("")
    return Either.right({ forward: ndjson(forward), answers: ndjson(answers) })
  }
}
