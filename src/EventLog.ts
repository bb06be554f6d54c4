/**
 * The event log's public face: its reads (`EventsRepo`; it is written by the SQL functions only), the LISTEN
 * connection that hears its notifications (`Listener`), this process's own events (`LocalEvents`) and a job's
 * outcome (`Outcome`).
 */
export { clientConfig, Listener } from "./EventLog/Listener.js"
export type { ListenerState } from "./EventLog/Listener.js"
export { LocalEvents } from "./EventLog/LocalEvents.js"
export { EventsRepo } from "./EventLog/EventsRepo.js"
export type { StreamFilter, StreamPosition, TailItem } from "./EventLog/EventsRepo.js"
export { decodeOutcomePayload, fromOutcomeJson, makeOutcome, OutcomeJson, outcomeOfEvent } from "./EventLog/Outcome.js"
export { parseDoorbell } from "./EventLog/Doorbell.js"
export type { Doorbell } from "./EventLog/Doorbell.js"
