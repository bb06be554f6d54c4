// `npm run bench -- latency`: from a worker's completion call returning to the waiter resolving, jobwatch's
// CompletionWatcher beside a raw-SQL floor on the same database (an UPDATE with pg_notify in one statement, one
// bare LISTEN connection resolving the waiter). (a) idle: one job at a time, 300 samples; (b) load: 1,000 jobs in
// flight awaited at once, completed by 10 concurrent workers. Each is measured with the worker in this process
// (jobwatch's in-process path) and in another process (the doorbell path; `latencyWorker.ts`), the floor's
// completions made from the same place as jobwatch's; with the worker in another process, once more with floor and
// jobwatch alternating, so that both are measured on one machine state. Times are read on the machine's monotonic
// clock, which both processes share.
import { Cause, Deferred, Effect, Fiber } from "effect"
import { fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import pg from "pg"
import { CompletionWatcher } from "../../src/CompletionWatcher.js"
import { JobWatchConfig } from "../../src/Config.js"
import type { JobId } from "../../src/Domain/JobId.js"
import { Jobs } from "../../src/Jobs.js"
import { Repos } from "../support/repos.js"
import { Notifications } from "../../src/Notifications.js"
import { completeFloor, connectClients, floorOf } from "./latencyFloor.js"
import type { Reply, Request } from "./latencyWorker.js"
import { median, monotonicMs, ms, summarize } from "./stats.js"

const idleSamples = 300
const loadJobs = 1000
const workers = 10

type Summary = ReturnType<typeof summarize>

/** Waiting for completions is bounded: a worker that died must not leave the bench waiting forever. */
const bounded = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.timeoutFailCause(self, {
    duration: "2 minutes",
    onTimeout: () => Cause.die(new Error("completions still missing after 2 minutes: did the bench worker die?"))
  })
type Mode = "callback" | "fiber"
type Kind = "floor" | "jobwatch"

/**
 * Where completions are made. `start` begins completing `ids` (`concurrency` at a time) and answers without
 * waiting for them when they are made elsewhere; `times` answers when each completion call returned.
 */
interface Completer {
  readonly start: (kind: Kind, ids: ReadonlyArray<string>, concurrency: number) => Effect.Effect<void>
  readonly times: Effect.Effect<ReadonlyMap<string, number>>
}

/** The worker in this process: jobwatch's `JobsRepo` (its in-process path) and bare pg clients for the floor. */
const here = (url: string, schema: string) =>
  Effect.gen(function*() {
    const repo = yield* Repos
    const clients = yield* Effect.acquireRelease(
      Effect.promise(() => connectClients(url, workers)),
      (clients) => Effect.promise(() => Promise.all(clients.map((c) => c.end())))
    )
    const times = new Map<string, number>()
    const start = (kind: Kind, ids: ReadonlyArray<string>, concurrency: number) => {
      let next = 0
      return Effect.forEach(clients.slice(0, concurrency), (client) =>
        Effect.gen(function*() {
          while (next < ids.length) {
            const id = ids[next++]!
            if (kind === "floor") {
              yield* Effect.promise(() => completeFloor(client, schema, id))
            } else {
              yield* Effect.orDie(repo.complete(id as JobId, { resultJson: "true" }))
            }
            times.set(id, monotonicMs())
          }
        }), { concurrency: "unbounded", discard: true })
    }
    return { start, times: Effect.sync(() => times) } satisfies Completer
  })

/** The worker in another process (`latencyWorker.ts`), with a pool of its own; it can also interleave kinds. */
const otherProcess = (url: string, schema: string) =>
  Effect.gen(function*() {
    const replies: Array<(reply: Reply) => void> = []
    // a worker that exits early fails whatever waits on it, and the bench ends instead of hanging
    let exited: ((code: number | null) => void) | undefined
    const child = yield* Effect.acquireRelease(
      Effect.async<ReturnType<typeof fork>>((resume) => {
        const child = fork(fileURLToPath(new URL("./latencyWorker.ts", import.meta.url)), [url, schema, String(workers)], {
          execArgv: ["--import", "tsx"],
          stdio: ["ignore", "inherit", "inherit", "ipc"]
        })
        exited = (code) => resume(Effect.die(new Error(`the bench worker exited (${code}) before it was ready`)))
        child.once("exit", (code) => exited?.(code))
        child.once("message", () => {
          child.on("message", (reply: Reply) => replies.shift()?.(reply))
          resume(Effect.succeed(child))
        })
      }),
      (child) =>
        child.exitCode !== null || child.signalCode !== null
          ? Effect.void
          : Effect.async<void>((resume) => {
            exited = () => resume(Effect.void)
            child.send({ op: "exit" } satisfies Request)
          })
    )
    const send = (request: Request) =>
      Effect.suspend(() =>
        child.connected ? Effect.sync(() => child.send(request)) : Effect.die(new Error("the bench worker has exited"))
      )
    return {
      start: (kind, ids, concurrency) => send({ op: "complete", items: ids.map((id) => [kind, id] as const), concurrency }),
      startMixed: (items: ReadonlyArray<readonly [Kind, string]>, concurrency: number) =>
        send({ op: "complete", items, concurrency }),
      times: Effect.async<ReadonlyMap<string, number>>((resume) => {
        exited = (code) => resume(Effect.die(new Error(`the bench worker exited (${code})`)))
        replies.push((reply) => resume(Effect.succeed(new Map(Object.entries(reply.op === "times" ? reply.times : {})))))
        child.send({ op: "times" } satisfies Request)
      })
    } satisfies Completer & { readonly startMixed: unknown }
  })

/** The floor's waiting side: a bare table and one LISTEN connection resolving waiters. */
const floor = (url: string, table: string, channel: string) =>
  Effect.gen(function*() {
    const waiters = new Map<string, (at: number) => void>()
    yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const client = new pg.Client({ connectionString: url })
        client.on("notification", (msg) => {
          const resolve = waiters.get(msg.payload ?? "")
          if (resolve !== undefined) resolve(monotonicMs())
        })
        await client.connect()
        await client.query(`LISTEN "${channel}"`)
        return client
      }),
      (client) => Effect.promise(() => client.end())
    )
    const make = (n: number) =>
      Effect.promise(async () => {
        const client = new pg.Client({ connectionString: url })
        await client.connect()
        const rows = await client.query<{ id: string }>(
          `INSERT INTO ${table} SELECT gen_random_uuid(), 'running' FROM generate_series(1, $1) RETURNING id`,
          [n]
        )
        await client.end()
        return rows.rows.map((row) => row.id)
      })
    /**
     * A waiter on `id`: resolved by the LISTEN callback itself (`callback`), or a fiber awaiting a Deferred that
     * the callback completes (`fiber`: what any waiter in an Effect program pays to wake up).
     */
    const wait = (id: string, mode: Mode) =>
      Effect.gen(function*() {
        let resolved = 0
        if (mode === "callback") {
          const done = new Promise<void>((resolve) =>
            waiters.set(id, (at) => {
              resolved = at
              waiters.delete(id)
              resolve()
            })
          )
          return { done: Effect.promise(() => done), at: () => resolved }
        }
        const deferred = yield* Deferred.make<void>()
        waiters.set(id, () => {
          waiters.delete(id)
          Deferred.unsafeDone(deferred, Effect.void)
        })
        const fiber = yield* Effect.fork(
          Deferred.await(deferred).pipe(Effect.tap(() => Effect.sync(() => (resolved = monotonicMs()))))
        )
        return { done: Fiber.join(fiber), at: () => resolved }
      })

    /** One idle sample: waits on `id`, has it completed, answers when the waiter resolved. */
    const sample = (id: string, mode: Mode, completer: Completer) =>
      Effect.gen(function*() {
        const w = yield* wait(id, mode)
        yield* completer.start("floor", [id], 1)
        yield* bounded(w.done)
        return w.at()
      })

    const idle = (mode: Mode, completer: Completer) =>
      Effect.gen(function*() {
        const ids = yield* make(idleSamples)
        const resolved = new Map<string, number>()
        for (const id of ids) resolved.set(id, yield* sample(id, mode, completer))
        return latencies(ids, resolved, yield* completer.times)
      })

    const load = (mode: Mode, completer: Completer) =>
      Effect.gen(function*() {
        const ids = yield* make(loadJobs)
        const waits = yield* Effect.forEach(ids, (id) => wait(id, mode))
        const cpu = process.cpuUsage()
        yield* completer.start("floor", ids, workers)
        yield* bounded(Effect.forEach(waits, (w) => w.done, { discard: true }))
        const used = process.cpuUsage(cpu)
        return latencies(ids, new Map(ids.map((id, i) => [id, waits[i]!.at()])), yield* completer.times, used)
      })
    return { idle, load, make, wait, sample }
  })

/**
 * Resolved minus returned, per job (a waiter that resolved before the completion call returned counts 0), and the
 * CPU this process spent per job while they were completed, when measured.
 */
const latencies = (
  ids: ReadonlyArray<string>,
  resolved: ReadonlyMap<string, number>,
  returned: ReadonlyMap<string, number>,
  cpu?: NodeJS.CpuUsage
) => ({
  ...summarize(ids.map((id) => Math.max(0, resolved.get(id)! - returned.get(id)!))),
  cpuPerJob: cpu === undefined ? Number.NaN : (cpu.user + cpu.system) / ids.length
})

/** jobwatch's waiting side: jobs made running, awaited with `CompletionWatcher.waitFor`. */
const jobwatch = Effect.gen(function*() {
  const jobs = yield* Jobs
  const repo = yield* Repos
  const watcher = yield* CompletionWatcher
  const notifications = yield* Notifications

  const running = (n: number) =>
    Effect.gen(function*() {
      const queue = `bench-${Math.random().toString(36).slice(2)}`
      const ids: Array<JobId> = []
      for (let i = 0; i < n; i += 1000) {
        yield* jobs.enqueueBatch(Array.from({ length: Math.min(1000, n - i) }, () => ({ name: "bench", queue })))
        const claimed = yield* repo.claim({ workerId: "bench", queues: [queue], limit: 1000, leaseMs: 600_000 })
        yield* Effect.forEach(claimed, (job) => repo.start(job.id), { concurrency: 10, discard: true })
        ids.push(...claimed.map((job) => job.id))
      }
      return ids
    })

  /** Forks waiters that record when they resolved; answers once their registrations have been read. */
  const waitOn = (ids: ReadonlyArray<JobId>) =>
    Effect.gen(function*() {
      const before = (yield* notifications.stats).jobsRead
      const resolved = new Map<string, number>()
      const fibers = yield* Effect.forEach(ids, (id) =>
        Effect.fork(watcher.waitFor(id).pipe(Effect.tap(() => Effect.sync(() => resolved.set(id, monotonicMs()))))))
      for (let i = 0; i < 2000 && (yield* notifications.stats).jobsRead - before < ids.length; i++) {
        yield* Effect.sleep("2 millis")
      }
      return { resolved, fibers }
    })

  /** One idle sample: waits on `id`, has it completed, answers when the waiter resolved. */
  const sample = (id: JobId, completer: Completer) =>
    Effect.gen(function*() {
      const w = yield* waitOn([id])
      yield* completer.start("jobwatch", [id], 1)
      yield* bounded(Fiber.joinAll(w.fibers))
      return w.resolved.get(id)!
    })

  const idle = (completer: Completer) =>
    Effect.gen(function*() {
      const ids = yield* running(idleSamples)
      const resolved = new Map<string, number>()
      for (const id of ids) resolved.set(id, yield* sample(id, completer))
      return latencies(ids, resolved, yield* completer.times)
    })

  const load = (completer: Completer) =>
    Effect.gen(function*() {
      const ids = yield* running(loadJobs)
      const w = yield* waitOn(ids)
      const cpu = process.cpuUsage()
      yield* completer.start("jobwatch", ids, workers)
      // awaited, not joined: joining 1,000 fibers merges their fiber refs, which is no part of waiting
      const exits = yield* bounded(Effect.forEach(w.fibers, Fiber.await))
      const used = process.cpuUsage(cpu)
      yield* Effect.forEach(exits, (exit) => Effect.orDie(exit), { discard: true })
      return latencies(ids, w.resolved, yield* completer.times, used)
    })
  return { idle, load, running, waitOn, sample }
})

/** Rounds of each case: `LATENCY_ROUNDS`, at least 1; 3 when unset or not a number. */
const rounds = Math.max(1, Math.floor(Number(process.env.LATENCY_ROUNDS ?? 3)) || 3)

/** A ratio of ours to the floor's; sub-millisecond floors make ratios noisy: it is taken on at least 0.1 ms of floor. */
const ratio = (ours: number, base: number) => ours / Math.max(base, 0.1)

const figures = (s: Summary) => `p50 ${ms(s.p50).padStart(8)}  p95 ${ms(s.p95).padStart(8)}  p99 ${ms(s.p99).padStart(8)}`

/** One round's floor and jobwatch, with the "floor cb" figures when measured. */
interface Round {
  readonly callback?: Summary
  readonly floor: Summary & { readonly cpuPerJob: number }
  readonly jobwatch: Summary & { readonly cpuPerJob: number }
}

/** Prints each round and the verdict on the median of the rounds' ratios. */
const report = (title: string, measured: ReadonlyArray<Round>, cpu: boolean) => {
  console.log(`  ${title}`)
  measured.forEach((round, i) => {
    const r50 = ratio(round.jobwatch.p50, round.floor.p50)
    const r99 = ratio(round.jobwatch.p99, round.floor.p99)
    console.log(`    round ${i + 1}`)
    if (round.callback !== undefined) console.log(`      floor cb  ${figures(round.callback)}`)
    console.log(`      floor     ${figures(round.floor)}`)
    console.log(`      jobwatch  ${figures(round.jobwatch)}   ratio p50 ${r50.toFixed(2)}×  p99 ${r99.toFixed(2)}×`)
    if (cpu && !Number.isNaN(round.jobwatch.cpuPerJob)) {
      // the waiting process only waits here: its CPU is what waiting costs
      console.log(`      CPU of the waiting process per job: floor ${round.floor.cpuPerJob.toFixed(0)} µs, jobwatch ${round.jobwatch.cpuPerJob.toFixed(0)} µs`)
    }
  })
  const r50 = median(measured.map((round) => ratio(round.jobwatch.p50, round.floor.p50)))
  const r99 = median(measured.map((round) => ratio(round.jobwatch.p99, round.floor.p99)))
  const met = (value: number, target: number) => `${value.toFixed(2)}× (target ≤ ${target}×: ${value <= target ? "met" : "NOT met"})`
  console.log(`    median of ${measured.length} rounds: p50 ${met(r50, 1.3)}  p99 ${met(r99, 2)}`)
}

/** `n` rounds of `round`; `round(k)` may use `k` to alternate which side goes first. */
const repeat = <A, E, R>(round: (k: number) => Effect.Effect<A, E, R>) =>
  Effect.forEach(Array.from({ length: rounds }, (_, k) => k), round)

/** `a` then `b` in even rounds, `b` then `a` in odd ones (neither always runs on the other's leftovers); in order. */
const inTurn = <A, B, E, R>(k: number, a: Effect.Effect<A, E, R>, b: Effect.Effect<B, E, R>) =>
  k % 2 === 0
    ? Effect.all([a, b] as const)
    : Effect.map(Effect.all([b, a] as const), ([y, x]) => [x, y] as const)

export const latency = (url: string) =>
  Effect.gen(function*() {
    const { schema } = yield* JobWatchConfig
    const { channel, table } = floorOf(schema)
    yield* Effect.promise(async () => {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      await client.query(`CREATE TABLE ${table} (id uuid PRIMARY KEY, status text NOT NULL)`)
      await client.end()
    })
    const raw = yield* floor(url, table, channel)
    const ours = yield* jobwatch
    const elsewhere = yield* otherProcess(url, schema)
    const places = [
      { title: "worker in this process (jobwatch's in-process path)", completer: yield* here(url, schema) },
      { title: "worker in another process (the doorbell path)", completer: elsewhere }
    ]
    // warm every path up once
    for (const { completer } of places) {
      yield* Effect.all([ours.idle(completer), raw.idle("callback", completer), raw.idle("fiber", completer)], { discard: true })
    }
    console.log(`latency: worker's completion call returned → waiter resolved`)
    console.log(`floor: UPDATE … pg_notify, one bare LISTEN connection; "floor cb" resolves in its callback, "floor" wakes`)
    console.log(`a fiber awaiting a Deferred (what any Effect waiter pays); ratios are against "floor"`)
    console.log(`${rounds} rounds (LATENCY_ROUNDS), floor and jobwatch taking turns to go first; the verdict is on the median of the rounds`)
    // with the worker in another process, floor and jobwatch also measured alternating, on one machine state: a
    // jobwatch completion costs PostgreSQL and the worker more than the floor's bare UPDATE, and on a small machine
    // that load alone lengthens the tail of any waiter, a bare LISTEN's too
    const alternating = {
      idle: Effect.gen(function*() {
        const floorIds = yield* raw.make(idleSamples)
        const jobIds = yield* ours.running(idleSamples)
        const floorResolved = new Map<string, number>()
        const jobResolved = new Map<string, number>()
        for (let i = 0; i < idleSamples; i++) {
          floorResolved.set(floorIds[i]!, yield* raw.sample(floorIds[i]!, "fiber", elsewhere))
          jobResolved.set(jobIds[i]!, yield* ours.sample(jobIds[i]!, elsewhere))
        }
        const times = yield* elsewhere.times
        return { floor: latencies(floorIds, floorResolved, times), jobwatch: latencies(jobIds, jobResolved, times) }
      }),
      load: Effect.gen(function*() {
        const floorIds = yield* raw.make(loadJobs)
        const floorWaits = yield* Effect.forEach(floorIds, (id) => raw.wait(id, "fiber"))
        const jobIds = yield* ours.running(loadJobs)
        const w = yield* ours.waitOn(jobIds)
        yield* elsewhere.startMixed(jobIds.flatMap((id, i) => [["jobwatch", id], ["floor", floorIds[i]!]] as const), workers)
        yield* bounded(Effect.forEach(floorWaits, (x) => x.done, { discard: true }))
        const exits = yield* bounded(Effect.forEach(w.fibers, Fiber.await))
        yield* Effect.forEach(exits, (exit) => Effect.orDie(exit), { discard: true })
        const times = yield* elsewhere.times
        return {
          floor: latencies(floorIds, new Map(floorIds.map((id, i) => [id, floorWaits[i]!.at()])), times),
          jobwatch: latencies(jobIds, w.resolved, times)
        }
      })
    }
    const cases = [
      {
        title: `(a) idle, one job at a time, ${idleSamples} samples a round`,
        callback: (c: Completer) => raw.idle("callback", c),
        floor: (c: Completer) => raw.idle("fiber", c),
        jobwatch: (c: Completer) => ours.idle(c),
        alternating: alternating.idle
      },
      {
        title: `(b) load, ${loadJobs} jobs in flight a round, ${workers} workers`,
        callback: (c: Completer) => raw.load("callback", c),
        floor: (c: Completer) => raw.load("fiber", c),
        jobwatch: (c: Completer) => ours.load(c),
        alternating: alternating.load
      }
    ]
    for (const measure of cases) {
      console.log(measure.title)
      for (const { title, completer } of places) {
        const measured = yield* repeat((k) =>
          Effect.gen(function*() {
            const callback = yield* measure.callback(completer)
            const [floor, jobwatch] = yield* inTurn(k, measure.floor(completer), measure.jobwatch(completer))
            return { callback, floor, jobwatch } satisfies Round
          })
        )
        report(title, measured, completer === elsewhere)
      }
      report(
        "worker in another process, floor and jobwatch alternating (one machine state for both)",
        yield* repeat(() => measure.alternating),
        false
      )
    }
  }).pipe(Effect.scoped)
