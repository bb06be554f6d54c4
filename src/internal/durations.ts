import { Duration, Either, Option } from "effect"

// The spelling of durations in jobwatch's configuration and command line: a `DurationInput`, or a shorthand such as
// `5s`, `250ms`, `30d`.

const shorthand = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i
const shorthandUnits = { ms: "millis", s: "seconds", m: "minutes", h: "hours", d: "days" } as const
const isShorthandUnit = (unit: string): unit is keyof typeof shorthandUnits => unit in shorthandUnits

/** Parses a duration: a `DurationInput`, or a string like `5 seconds`, `500 millis`, `5s`, `250ms`. */
export const parseDuration = (input: unknown): Option.Option<Duration.Duration> => {
  if (typeof input === "string") {
    const m = shorthand.exec(input)
    const unit = m?.[2]?.toLowerCase()
    if (m !== null && unit !== undefined && isShorthandUnit(unit)) {
      return Duration.decodeUnknown(`${m[1]} ${shorthandUnits[unit]}`)
    }
    return Duration.decodeUnknown(input.trim())
  }
  if (typeof input === "number") return Number.isFinite(input) && input >= 0 ? Option.some(Duration.millis(input)) : Option.none()
  return Duration.decodeUnknown(input)
}

/** The duration `text` spells (above zero when `positive`), or what was expected. */
export const durationOf = (text: string, positive: boolean): Either.Either<Duration.Duration, string> =>
  Option.match(parseDuration(text), {
    onNone: () => Either.left(`expected a duration such as "5 seconds" or "250ms", got ${JSON.stringify(text)}`),
    onSome: (d) => positive && Duration.toMillis(d) <= 0 ? Either.left("expected a duration above zero") : Either.right(d)
  })

/** An embedder's `DurationInput` as text the parser reads back (a string as it is, so that its mistakes show). */
export const durationText = (input: Duration.DurationInput): string =>
  typeof input === "string"
    ? input
    : Option.match(Duration.decodeUnknown(input), {
      onNone: () => String(input),
      onSome: (d) => `${Duration.toMillis(d)} millis`
    })
