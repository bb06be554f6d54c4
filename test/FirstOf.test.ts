import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import type { Trigger } from "../src/internal/firstOf.js"
import { firstOf, makeAlarms } from "../src/internal/firstOf.js"

/** A trigger fired by hand, which tells whether it is registered. */
const manual = () => {
  let fire: (() => void) | undefined
  const trigger: Trigger = (f) => {
    fire = f
    return () => {
      fire = undefined
    }
  }
  return { trigger, fire: () => fire?.(), registered: () => fire !== undefined }
}

describe("firstOf", () => {
  it.effect("answers at the first trigger and cancels them all", () =>
    Effect.gen(function*() {
      const [a, b, c] = [manual(), manual(), manual()]
      const wait = yield* Effect.fork(firstOf([a.trigger, b.trigger, c.trigger]))
      yield* Effect.yieldNow()
      assert.isTrue(a.registered() && b.registered() && c.registered())
      b.fire()
      yield* Fiber.join(wait)
      assert.isFalse(a.registered() || b.registered() || c.registered())
    }))

  it.effect("a trigger that fires while registering answers at once; the later ones are never registered", () =>
    Effect.gen(function*() {
      const [a, c] = [manual(), manual()]
      const now: Trigger = (fire) => {
        fire()
        return () => {}
      }
      yield* firstOf([a.trigger, now, c.trigger])
      assert.isFalse(a.registered() || c.registered())
    }))

  it.effect("interruption cancels every trigger", () =>
    Effect.gen(function*() {
      const [a, b] = [manual(), manual()]
      const wait = yield* Effect.fork(firstOf([a.trigger, b.trigger]))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(wait)
      assert.isFalse(a.registered() || b.registered())
    }))
})

describe("alarms", () => {
  it.scoped("fire at their deadlines on the Clock, in order, an earlier one set later included; a canceled one never", () =>
    Effect.gen(function*() {
      const alarms = yield* makeAlarms
      const fired: Array<string> = []
      const set = (name: string, millis: number) => alarms.after(millis)(() => fired.push(name))
      set("b", 2_000)
      const cancelC = set("c", 3_000)
      set("d", 60_000)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(fired, [])
      // earlier than every pending one: wakes the sleeping fiber
      set("a", 500)
      cancelC()
      yield* TestClock.adjust("600 millis")
      assert.deepStrictEqual(fired, ["a"])
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(fired, ["a", "b"])
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(fired, ["a", "b", "d"])
    }))

  it.scoped("thousands of alarms, most canceled: the rest fire, each once", () =>
    Effect.gen(function*() {
      const alarms = yield* makeAlarms
      const fired = new Map<number, number>()
      const cancels: Array<() => void> = []
      for (let i = 0; i < 5_000; i++) {
        cancels.push(alarms.after(1_000 + (i % 97) * 10)(() => fired.set(i, (fired.get(i) ?? 0) + 1)))
      }
      // cancels 4,000 of them (the heap is rebuilt on the way)
      for (let i = 0; i < 5_000; i++) if (i % 5 !== 0) cancels[i]!()
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(fired.size, 1_000)
      for (const [i, times] of fired) {
        assert.strictEqual(i % 5, 0)
        assert.strictEqual(times, 1)
      }
    }))
})
