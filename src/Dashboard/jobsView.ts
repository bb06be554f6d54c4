import { DateTime } from "effect"
import type { JobInfo } from "../Domain/Job.js"
import type { JobEvent } from "../Domain/JobEvent.js"
import { allStatuses, isTerminal } from "../Domain/JobStatus.js"
import type { JobStatus } from "../Domain/JobStatus.js"
import type { TailItem } from "../EventLog.js"
import { html, trusted } from "./html.js"
import { csrfInput, duration, jsonBlock, liveState, progressBar, scrollRegion, statusBadge, when } from "./layout.js"
import type { Session } from "./session.js"
import { basePath } from "./session.js"

/** The jobs list and a job's page: rows drawn alike from a listed job and from a live event of the stream. */

/** A webhook delivery of a job, with its attempts, as the page shows it. */
export interface JobDelivery {
  readonly version: number
  readonly type: string | null
  readonly url: string
  readonly status: string
  readonly nextAttemptAt: Date
  readonly log: ReadonlyArray<{
    readonly startedAt: Date
    readonly status: number | null
    readonly durationMs: number | null
    readonly error: string | null
  }>
}

/** What a row of the jobs list shows. */
export interface RowModel {
  readonly id: string
  readonly name: string
  readonly queue: string
  readonly status: JobStatus
  readonly percent: number
  readonly step: string | null
  readonly message: string | null
  readonly attempt: number
  readonly updatedAt: Date
  readonly version: number
}

export const rowOfJob = (job: JobInfo): RowModel => ({
  id: job.id,
  name: job.name,
  queue: job.queue,
  status: job.status,
  percent: job.progress.percent,
  step: job.progress.step,
  message: job.progress.message,
  attempt: job.attempt,
  updatedAt: DateTime.toDate(job.updatedAt),
  version: job.version
})

export const rowOfItem = (item: TailItem): RowModel => ({
  id: item.event.jobId,
  name: item.name,
  queue: item.queue,
  status: item.event.status,
  percent: item.event.progress,
  step: item.event.step,
  message: item.event.message,
  attempt: item.event.attempt,
  updatedAt: DateTime.toDate(item.event.timestamp),
  version: item.event.version
})

export const jobHref = (id: string) => `${basePath}/jobs/${id}`

/**
 * A row; `live` marks a row sent by the stream (`dashboard.js` puts it in place: it replaces the row of its job
 * when it is newer, or, when `enter` says it joins the list, adds it at the top of the first page).
 */
export const jobRow = (row: RowModel, live?: { readonly enter: boolean }) =>
  html`<tr id="job-${row.id}" data-version="${row.version}" data-status="${row.status}"${
    live === undefined ? "" : trusted(` data-live="row" data-into="jobs-body" data-enter="${live.enter}"`)
  }><td data-label="Job"><a href="${jobHref(row.id)}"><code>${row.id.slice(0, 8)}…${row.id.slice(-4)}</code></a></td><td data-label="Name" class="name">${row.name}</td><td data-label="Queue">${row.queue}</td><td data-label="Status">${
    statusBadge(row.status)
  }</td><td data-label="Progress">${progressBar(row.percent, row.step, row.message, `Progress of ${row.name}`)}</td><td data-label="Attempt">${row.attempt}</td><td data-label="Updated">${
    when(row.updatedAt)
  }</td></tr>`

export interface ListFilters {
  readonly status?: string | undefined
  readonly queue?: string | undefined
  readonly name?: string | undefined
  readonly id?: string | undefined
}

const filtersForm = (filters: ListFilters) =>
  html`<form class="filters" method="get" action="${basePath}/jobs" role="search" aria-label="Filter jobs">
<label>Status <select name="status"><option value="">any</option>${
    allStatuses.map((status) =>
      html`<option value="${status}"${filters.status === status ? trusted(" selected") : ""}>${status}</option>`
    )
  }<option value="active"${filters.status === "active" ? trusted(" selected") : ""}>claimed or running</option></select></label>
<label>Queue <input name="queue" value="${filters.queue ?? ""}" autocomplete="off"></label>
<label>Name <input name="name" value="${filters.name ?? ""}" autocomplete="off"></label>
<label>Job id <input name="id" value="${filters.id ?? ""}" placeholder="a job's UUID" autocomplete="off" spellcheck="false"></label>
<button type="submit">Show</button> <a href="${basePath}/jobs">Clear</a></form>`

/** A query string of the filters (and more parameters), for links and the live stream's URL. */
export const queryOf = (params: Record<string, string | undefined>) => {
  const query = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== "") query.set(key, value)
  const text = query.toString()
  return text === "" ? "" : `?${text}`
}

/** The live list: the filters, the table (rows replaced and added by the page's one event stream), paging. */
export const jobsList = (options: {
  readonly filters: ListFilters
  readonly rows: ReadonlyArray<RowModel>
  readonly cursor: string | undefined
  readonly nextCursor: string | null
  readonly after: string
}) => {
  const { filters } = options
  const plain = { status: filters.status, queue: filters.queue, name: filters.name }
  const live = `${basePath}/live${queryOf({ view: "jobs", ...plain, after: options.after })}`
  const firstPage = options.cursor === undefined
  return html`${filtersForm(filters)}
<div class="live" hx-ext="sse" sse-connect="${live}"><div sse-swap="jobs" hidden></div>
${liveState}
<div class="table-wrap"><table class="jobs"><caption class="visually-hidden">Jobs, newest first${
    firstPage ? "; new jobs appear at the top as they are enqueued" : ""
  }</caption><thead><tr><th scope="col">Job</th><th scope="col">Name</th><th scope="col">Queue</th><th scope="col">Status</th><th scope="col">Progress</th><th scope="col">Attempt</th><th scope="col">Updated</th></tr></thead>
<tbody id="jobs-body" data-live-new="${String(firstPage)}">${options.rows.map((row) => jobRow(row))}</tbody></table></div>
${options.rows.length === 0 ? html`<p class="empty" data-empty>No jobs match.${firstPage ? " New ones appear here live." : ""}</p>` : ""}
</div>
<nav class="paging" aria-label="Pages of jobs">${
    firstPage ? "" : html`<a href="${basePath}/jobs${queryOf(plain)}">← Newest jobs</a>`
  }${
    options.nextCursor === null
      ? ""
      : html`<a href="${basePath}/jobs${queryOf({ ...plain, cursor: options.nextCursor })}" rel="next">Older jobs →</a>`
  }</nav>`
}

const field = (label: string, value: Parameters<typeof html>[1]) => html`<dt>${label}</dt><dd>${value}</dd>`

/** Every field of a job, as one block the live stream replaces when the job changes. */
export const jobSummary = (job: JobInfo, live = false) =>
  html`<section id="job-summary" class="summary" aria-labelledby="summary-title" data-version="${job.version}"${
    live ? trusted(` data-live="replace"`) : ""
  }><h2 id="summary-title">State</h2><p class="state">${statusBadge(job.status)}${
    job.cancelRequested && !job.terminal ? html` <span class="flag">cancel requested</span>` : ""
  }</p>${progressBar(job.progress.percent, job.progress.step, job.progress.message, `Progress of ${job.name}`)}
<dl class="fields">${[
    field("Id", html`<code>${job.id}</code>`),
    field("Name", job.name),
    field("Queue", job.queue),
    field("Owner", job.owner ?? "—"),
    field("Tracking", job.tracking),
    field("Priority", job.priority),
    field("Attempt", `${job.attempt} of ${job.maxAttempts}`),
    field("Timeout", job.timeoutSeconds === null ? "none" : duration(job.timeoutSeconds)),
    field("Idempotency key", job.idempotencyKey ?? "—"),
    field("Queue position", job.queuePosition ?? "—"),
    field("Worker", job.workerId ?? "—"),
    field("Lease expires", when(job.leaseExpiresAt)),
    field("Created", when(job.createdAt)),
    field("Scheduled for", when(job.scheduledAt)),
    field("Claimed", when(job.claimedAt)),
    field("Started", when(job.startedAt)),
    field("Finished", when(job.finishedAt)),
    field("Updated", when(job.updatedAt)),
    field("Version", job.version)
  ]}</dl>
<h2>Result</h2>${jsonBlock(job.result, "Result")}
${job.error === null ? "" : html`<h2>Error</h2><div class="error-box" role="note"><p><strong>${job.error.code ?? "error"}</strong>: ${job.error.message}</p></div>`}
<h2>Artefacts</h2>${
    job.artefacts.length === 0
      ? html`<p class="none">none</p>`
      : html`<ul class="artefacts">${
        job.artefacts.map((a) =>
          html`<li>${
            /^https?:/i.test(a.url) ? html`<a href="${a.url}" rel="noopener noreferrer nofollow">${a.name}</a>` : html`${a.name} (${a.url})`
          } · ${a.contentType} · ${a.size} bytes${a.checksum === null ? "" : html` · <code>${a.checksum}</code>`}</li>`
        )
      }</ul>`
  }</section>`

/** What an event changed, in words. */
const changeOf = (event: JobEvent) => {
  const parts: Array<string> = []
  if (event.type === "job.progress") parts.push(`progress ${event.previousProgress ?? 0} % → ${event.progress} %`)
  else if (event.type === "job.cancel_requested") parts.push("a cancel was requested")
  else parts.push(event.previousStatus === null ? `enqueued as ${event.status}` : `${event.previousStatus} → ${event.status}`)
  if (event.step !== null) parts.push(`step: ${event.step}`)
  if (event.message !== null) parts.push(`message: ${event.message}`)
  if (event.error !== null) parts.push(`error: ${event.error.message}`)
  if (event.milestone) parts.push("milestone")
  return parts.join(" · ")
}

/** One version of the job's history. */
export const timelineRow = (event: JobEvent, live = false) =>
  html`<tr id="event-${event.version}" data-version="${event.version}"${
    live ? trusted(` data-live="append" data-into="timeline-body"`) : ""
  }><td>${event.version}</td><td>${when(event.timestamp)}</td><td><code>${event.type}</code></td><td>${
    statusBadge(event.status)
  }</td><td>${event.attempt}</td><td>${changeOf(event)}</td></tr>`

const timeline = (events: ReadonlyArray<JobEvent>) =>
  html`<section aria-labelledby="timeline-title"><h2 id="timeline-title">Timeline</h2>${
    scrollRegion(
      "Timeline table",
      html`<table class="timeline">
<caption class="visually-hidden">Every version of the job, oldest first; new ones are added live</caption>
<thead><tr><th scope="col">Version</th><th scope="col">Time</th><th scope="col">Event</th><th scope="col">Status</th><th scope="col">Attempt</th><th scope="col">What changed</th></tr></thead>
<tbody id="timeline-body">${events.map((event) => timelineRow(event))}</tbody></table>`
    )
  }</section>`

const deliveries = (rows: ReadonlyArray<JobDelivery>) =>
  html`<section aria-labelledby="deliveries-title"><h2 id="deliveries-title">Webhook deliveries</h2>${
    rows.length === 0
      ? html`<p class="none">none</p>`
      : scrollRegion("Webhook deliveries table", html`<table><thead><tr><th scope="col">Event</th><th scope="col">To</th><th scope="col">State</th><th scope="col">Attempts</th></tr></thead><tbody>${
        rows.map((d) =>
          html`<tr><td>v${d.version} <code>${d.type ?? "—"}</code></td><td class="url">${d.url}</td><td>${d.status}${
            d.status === "pending" ? html`, next attempt ${when(d.nextAttemptAt)}` : ""
          }</td><td><ol class="attempts">${
            d.log.map((a) =>
              html`<li>${when(a.startedAt)}: ${a.status === null ? "no answer" : `HTTP ${a.status}`}${
                a.durationMs === null ? "" : ` in ${a.durationMs} ms`
              }${a.error === null ? "" : html` · ${a.error}`}</li>`
            )
          }</ol></td></tr>`
        )
      }</tbody></table>`)
  }</section>`

/**
 * The actions a job's state allows: cancel (not finished), delete (not held by a worker), re-enqueue a copy; replaced
 * live with the job's state (a job that finished meanwhile loses its Cancel button).
 */
export const jobActions = (session: Session, job: JobInfo, live = false) => {
  const form = (action: string, label: string, hint: string) =>
    html`<form method="post" action="${jobHref(job.id)}/${action}" class="action">${csrfInput(session)}<button type="submit" aria-describedby="hint-${action}">${label}</button><span id="hint-${action}" class="hint">${hint}</span></form>`
  return html`<section id="job-actions" aria-labelledby="actions-title" class="actions" data-version="${job.version}"${
    live ? trusted(` data-live="replace"`) : ""
  }><h2 id="actions-title">Actions</h2>${
    isTerminal(job.status) ? "" : form("cancel", "Cancel", "asks its worker to stop, or cancels it at once if no worker holds it")
  }${
    job.isActive ? "" : form("delete", "Delete", isTerminal(job.status) ? "removes it with its history" : "marks it deleted")
  }${form("requeue", "Enqueue a copy", "a new job with the same name, queue, payload and settings")}</section>`
}

/** A job's page: its state (replaced live), payload, actions, timeline (extended live) and webhook deliveries. */
export const jobPage = (options: {
  readonly session: Session
  readonly job: JobInfo
  readonly events: ReadonlyArray<JobEvent>
  readonly deliveries: ReadonlyArray<JobDelivery>
  readonly after: string
}) =>
  html`<div class="live" hx-ext="sse" sse-connect="${basePath}/live${
    queryOf({ view: "job", id: options.job.id, after: options.after })
  }"><div sse-swap="job" hidden></div>${liveState}
<div class="job-layout">${jobSummary(options.job)}
<section aria-labelledby="payload-title"><h2 id="payload-title">Payload</h2>${jsonBlock(options.job.payload, "Payload")}</section>
${jobActions(options.session, options.job)}</div>
${timeline(options.events)}</div>
${deliveries(options.deliveries)}`
