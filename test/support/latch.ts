import { Effect } from "effect"

/**
 * A latch over state that callbacks change: `notify()` after each change; `until(check, timeoutError)` answers once
 * `check` holds (at once if it does), or fails with `timeoutError()` after `ms` (default 20 s). A test waits on what
 * it observes, never on a sleep.
 */
export const makeLatch = () => {
  const listeners = new Set<() => void>()
  const notify = () => listeners.forEach((listener) => listener())
  const until = <A>(check: () => A | undefined | false, timeoutError: () => Error, ms = 20_000) =>
    Effect.async<A, Error>((resume) => {
      const test = () => {
        const answer = check()
        if (answer === undefined || answer === false) return
        listeners.delete(test)
        clearTimeout(timer)
        resume(Effect.succeed(answer))
      }
      const timer = setTimeout(() => {
        listeners.delete(test)
        resume(Effect.fail(timeoutError()))
      }, ms)
      listeners.add(test)
      test()
      return Effect.sync(() => {
        listeners.delete(test)
        clearTimeout(timer)
      })
    })
  return { notify, until }
}
