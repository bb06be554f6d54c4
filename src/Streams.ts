/** The streams' public face: one job's events and a user's live events, resumable by cursor (`EventStream`). */
export { EventStream } from "./Streams/EventStream.js"
export type { PositionedEvent, UserStreamFilter } from "./Streams/EventStream.js"
