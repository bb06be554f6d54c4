/**
 * The event log's public face: the LISTEN connection that hears its notifications (`Listener`) and this process's
 * own events (`LocalEvents`).
 */
export { Listener } from "./EventLog/Listener.js"
export type { ListenerState } from "./EventLog/Listener.js"
export { LocalEvents } from "./EventLog/LocalEvents.js"
