import type { Artefact } from "../Domain/Job.js"
import type { TailItem } from "../EventLog.js"

/** The exchanges and the progress rule the relay publishes by. */
export interface Topology {
  /** The topic exchange every event goes to. */
  readonly exchange: string
  /** The fanout exchange bound to `exchange` with `job.status.*`. */
  readonly erpExchange: string
  /** Every persisted progress report, not only milestones and 10-point moves. */
  readonly allProgress: boolean
}

/** One message to publish: where, its body and its properties. */
export interface Outgoing {
  readonly routingKey: string
  readonly content: Buffer
  readonly messageId: string
  readonly type: string
  /** Epoch seconds, as AMQP's timestamp property has it. */
  readonly timestamp: number
  readonly headers: { readonly job_id: string; readonly version: number }
}

/**
 * The routing key of an event: `job.status.<new status>` for a transition (a consumer binds one status, the ERP
 * fanout gets them all), `job.progress` for a progress report, `job.cancel_requested` for a cancel request.
 */
export const routingKeyOf = (item: TailItem): string => {
  switch (item.event.type) {
    case "job.progress":
      return "job.progress"
    case "job.cancel_requested":
      return "job.cancel_requested"
    default:
      return `job.status.${item.event.status}`
  }
}

/** An artefact in the message's snake_case. */
const artefactOf = (a: Artefact) => ({
  name: a.name,
  url: a.url,
  content_type: a.contentType,
  size: a.size,
  checksum: a.checksum
})

/**
 * The message of an event, in the replaced system's shape (snake_case), or `undefined` for a progress report the
 * rule leaves out (not a milestone nor a 10-point move, unless `allProgress`). `event_type` is the stored type:
 * `job.status.changed` (terminal ones too: the status tells), `job.progress` or `job.cancel_requested`.
 */
export const messageOf = (item: TailItem, topology: Topology): Outgoing | undefined => {
  const { event } = item
  if (event.type === "job.progress" && !event.milestone && !topology.allProgress) return undefined
  const eventType = event.type === "job.progress" || event.type === "job.cancel_requested"
    ? event.type
    : "job.status.changed"
  const terminal = event.type === "job.completed" || event.type === "job.failed" || event.type === "job.canceled" ||
    event.type === "job.deleted"
  const body = {
    event_id: event.id,
    event_type: eventType,
    timestamp: new Date(Number(event.timestamp.epochMillis)).toISOString(),
    job_id: event.jobId,
    job_name: item.name,
    queue: item.queue,
    owner: item.owner,
    version: event.version,
    status: event.status,
    progress: event.progress,
    attempt: event.attempt,
    previous_status: event.previousStatus,
    previous_progress: event.previousProgress,
    step: event.step,
    message: event.message,
    ...(event.type === "job.completed" ? { result: event.result } : {}),
    ...(terminal && event.error !== null ? { error: { code: event.error.code, message: event.error.message } } : {}),
    ...(terminal ? { artefacts: (event.artefacts ?? []).map(artefactOf) } : {})
  }
  return {
    routingKey: routingKeyOf(item),
    content: Buffer.from(JSON.stringify(body)),
    messageId: event.id,
    type: eventType,
    timestamp: Math.floor(Number(event.timestamp.epochMillis) / 1000),
    headers: { job_id: event.jobId, version: event.version }
  }
}
