import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import type { JobEvent } from "../Domain/JobEvent.js"

/**
 * The in-process fast path: a transition committed by this process hands its event straight to this process's
 * subscribers, without waiting for the doorbell and a read. Other processes still learn of it by the doorbell;
 * the doorbell that follows finds the event already known here and costs no read.
 */
export class LocalEvents extends Effect.Service<LocalEvents>()("jobwatch/LocalEvents", {
  sync: () => {
    const listeners = new Set<{ readonly listener: (event: JobEvent) => void; readonly interested: () => boolean }>()
    /** Whether a listener would look at an event now (a process that watches no job builds none). */
    const interested = () => {
      for (const l of listeners) if (l.interested()) return true
      return false
    }
    /** Called after the event's transaction committed. */
    const publish = (event: JobEvent) =>
      Effect.sync(() => {
        for (const l of listeners) l.listener(event)
      })
    return {
      publish,
      /**
       * Publishes the event a writer function just wrote, committed already unless the caller holds a transaction
       * (then the doorbell tells, after its commit). `event` is built only when it is published.
       */
      publishCommitted: (event: () => JobEvent) =>
        Effect.flatMap(
          Effect.serviceOption(SqlClient.TransactionConnection),
          (tx) => Option.isNone(tx) && interested() ? publish(event()) : Effect.void
        ),
      /**
       * Registers `listener` until the scope closes. `interested` says whether it would look at any event now: when
       * no listener would, events are not built.
       */
      subscribe: (listener: (event: JobEvent) => void, interested: () => boolean = () => true) =>
        Effect.suspend(() => {
          const entry = { listener, interested }
          return Effect.acquireRelease(
            Effect.sync(() => listeners.add(entry)),
            () => Effect.sync(() => listeners.delete(entry))
          )
        }).pipe(Effect.asVoid)
    } as const
  }
}) {}
