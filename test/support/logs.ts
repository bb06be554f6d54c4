import { Effect, Logger, Ref } from "effect"

/** Runs `effect` with a logger that keeps every line as `LEVEL message` (the cause, if any, as a second line). */
export const capturingLogs = <A, E, R>(effect: (logs: Ref.Ref<ReadonlyArray<string>>) => Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const logs = yield* Ref.make<ReadonlyArray<string>>([])
    const logger = Logger.make(({ cause, logLevel, message }) => {
      const text = Array.isArray(message) ? message.join(" ") : String(message)
      const trace = cause._tag === "Empty" ? "" : "\n(with a cause)"
      Effect.runSync(Ref.update(logs, (all) => [...all, `${logLevel.label} ${text}${trace}`]))
    })
    return yield* effect(logs).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  })

/** The lines that match `pattern`. */
export const linesMatching = (logs: Ref.Ref<ReadonlyArray<string>>, pattern: RegExp) =>
  Effect.map(Ref.get(logs), (lines) => lines.filter((line) => pattern.test(line)))
