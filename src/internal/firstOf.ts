import { Clock, Effect, Queue } from "effect"

/** Registers `fire` to be called when something happens (more than once is harmless); answers its idempotent cancel. */
export type Trigger = (fire: () => void) => () => void

/**
 * Waits until the first of `triggers` fires, and cancels them all then or on interruption. Racing effects forks a
 * fiber per side (a long-poll raced its change, its timeout and the server's drain: five fibers); this waits on
 * callbacks alone, in the caller's fiber.
 */
export const firstOf = (triggers: ReadonlyArray<Trigger>): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    let fired = false
    const cancels: Array<() => void> = []
    const cancelAll = () => {
      for (const cancel of cancels) cancel()
    }
    const fire = () => {
      if (fired) return
      fired = true
      cancelAll()
      resume(Effect.void)
    }
    for (const trigger of triggers) {
      const cancel = trigger(fire)
      cancels.push(cancel)
      // fired while registering: the ones before were canceled, this one not yet
      if (fired) {
        cancel()
        break
      }
    }
    return Effect.sync(cancelAll)
  })

interface Alarm {
  readonly at: number
  fire: (() => void) | undefined
}

/**
 * Deadlines by the thousand on one fiber: `after(millis)` is a trigger that fires once `millis` have passed on the
 * Clock (a TestClock too). A pending alarm is an entry of a binary heap; a canceled one is dropped lazily, and the
 * heap is rebuilt when most of it is canceled. The fiber sleeps until the earliest deadline and wakes when an
 * earlier one is set. Scoped: the fiber ends with the scope, and alarms then never fire.
 */
export const makeAlarms = Effect.gen(function*() {
  const clock = yield* Effect.clock
  const heap: Array<Alarm> = []
  let canceled = 0
  const wake = yield* Queue.sliding<void>(1)

  const up = (i: number) => {
    const alarm = heap[i]!
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent]!.at <= alarm.at) break
      heap[i] = heap[parent]!
      i = parent
    }
    heap[i] = alarm
  }
  const down = (i: number) => {
    const alarm = heap[i]!
    const n = heap.length
    while (true) {
      let child = 2 * i + 1
      if (child >= n) break
      if (child + 1 < n && heap[child + 1]!.at < heap[child]!.at) child++
      if (heap[child]!.at >= alarm.at) break
      heap[i] = heap[child]!
      i = child
    }
    heap[i] = alarm
  }
  const pop = () => {
    const top = heap[0]!
    const last = heap.pop()!
    if (heap.length > 0) {
      heap[0] = last
      down(0)
    }
    if (top.fire === undefined) canceled--
    return top
  }
  const compact = () => {
    const live = heap.filter((alarm) => alarm.fire !== undefined)
    heap.length = 0
    heap.push(...live)
    for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i)
    canceled = 0
  }

  const after = (millis: number): Trigger => (fire) => {
    const alarm: Alarm = { at: clock.unsafeCurrentTimeMillis() + millis, fire }
    heap.push(alarm)
    up(heap.length - 1)
    if (heap[0] === alarm) Queue.unsafeOffer(wake, undefined)
    return () => {
      if (alarm.fire === undefined) return
      alarm.fire = undefined
      if (++canceled > 1024 && canceled > heap.length / 2) compact()
    }
  }

  const loop = Effect.gen(function*() {
    while (true) {
      while (heap.length > 0 && heap[0]!.fire === undefined) pop()
      if (heap.length === 0) {
        yield* Queue.take(wake)
        continue
      }
      const wait = heap[0]!.at - (yield* Clock.currentTimeMillis)
      if (wait <= 0) {
        const alarm = pop()
        const fire = alarm.fire!
        alarm.fire = undefined
        fire()
        continue
      }
      yield* Effect.raceFirst(Effect.sleep(wait), Queue.take(wake))
    }
  })
  yield* Effect.forkScoped(loop)
  return { after } as const
})
