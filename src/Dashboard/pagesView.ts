import type { DashboardOverview, DashboardWorker, EndpointHealth, MinuteCounts } from "./DashboardRepo.js"
import type { WebhookDelivery, WebhookEndpoint } from "../Domain/Webhook.js"
import { allStatuses } from "../Domain/JobStatus.js"
import type { JobStatus } from "../Domain/JobStatus.js"
import type { Html } from "./html.js"
import { html } from "./html.js"
import { jobHref, queryOf } from "./jobsView.js"
import { age, csrfInput, duration, notice, scrollRegion, statusBadge, when } from "./layout.js"
import { basePath } from "./session.js"

/** The overview, workers, webhooks and sign-in pages. */

type MinuteStats = MinuteCounts

const hhmm = (date: Date) => date.toISOString().slice(11, 16)

/**
 * Completed and failed jobs per minute over the last hour, as bars: completed solid, failed hatched and stacked
 * on top (the legend and each bar's title say which is which; the same figures follow as a table).
 */
export const minuteChart = (minutes: ReadonlyArray<MinuteStats>) => {
  const width = 600
  const height = 120
  const slot = width / Math.max(1, minutes.length)
  const most = Math.max(1, ...minutes.map((m) => m.completed + m.failed))
  const scale = (n: number) => (n / most) * (height - 4)
  const bars = minutes.map((m, i) => {
    const done = scale(m.completed)
    const failed = scale(m.failed)
    const x = (i * slot + 1).toFixed(1)
    const w = Math.max(1, slot - 2).toFixed(1)
    return html`<g><title>${hhmm(m.minute)} UTC: ${m.completed} completed, ${m.failed} failed</title><rect class="bar-completed" x="${x}" y="${
      (height - done).toFixed(1)
    }" width="${w}" height="${done.toFixed(1)}"></rect><rect class="bar-failed" fill="url(#hatch)" x="${x}" y="${
      (height - done - failed).toFixed(1)
    }" width="${w}" height="${failed.toFixed(1)}"></rect></g>`
  })
  const total = minutes.reduce((sum, m) => ({ completed: sum.completed + m.completed, failed: sum.failed + m.failed }), {
    completed: 0,
    failed: 0
  })
  return html`<figure class="chart"><svg viewBox="0 0 ${width} ${height}" role="img" aria-labelledby="chart-title" preserveAspectRatio="none">
<title id="chart-title">Jobs finished per minute in the last hour: ${total.completed} completed, ${total.failed} failed (at most ${most} in a minute)</title>
<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" class="hatch-bg"></rect><line x1="0" y1="0" x2="0" y2="6" class="hatch-line" stroke-width="3"></line></pattern></defs>
${bars}</svg>
<figcaption><span class="key key-completed" aria-hidden="true"></span> completed (solid) · <span class="key key-failed" aria-hidden="true"></span> failed (hatched) · ${
    minutes.length > 0 ? `${hhmm(minutes[0]!.minute)}–${hhmm(minutes[minutes.length - 1]!.minute)} UTC` : ""
  } · most in a minute: ${most}</figcaption>
<details><summary>The figures</summary>${scrollRegion("Finished per minute table", html`<table><thead><tr><th scope="col">Minute (UTC)</th><th scope="col">Completed</th><th scope="col">Failed</th></tr></thead><tbody>${
    minutes.filter((m) => m.completed + m.failed > 0).map((m) =>
      html`<tr><td>${hhmm(m.minute)}</td><td>${m.completed}</td><td>${m.failed}</td></tr>`
    )
  }</tbody></table>`)}</details></figure>`
}

const countLink = (queue: string, status: JobStatus, count: number) =>
  count === 0 ? html`<span class="zero">0</span>` : html`<a href="${basePath}/jobs${queryOf({ queue, status })}">${count}</a>`

/** The figures of the overview, refreshed on a timer (counts may; job rows never poll). */
export const overviewStats = (stats: DashboardOverview) =>
  html`<div id="overview-stats" hx-get="${basePath}/overview/stats" hx-trigger="every 5s" hx-swap="outerHTML">
<section aria-labelledby="queues-title"><h2 id="queues-title">Queues</h2><p class="hint">Unfinished jobs now; finished ones and run times since ${
    when(stats.terminalSince)
  } (the last hour).${
    stats.totalQueues > stats.queues.length ? ` The ${stats.queues.length} busiest of ${stats.totalQueues} queues.` : ""
  }</p>${
    stats.queues.length === 0
      ? html`<p class="empty">No jobs yet. Enqueue one through the API (<a href="/docs">/docs</a>) and it shows here.</p>`
      : html`<div class="table-wrap"><table class="queues"><caption class="visually-hidden">Jobs per queue and status, the oldest pending job's age, and run times of the last hour</caption>
<thead><tr><th scope="col">Queue</th>${allStatuses.map((s) => html`<th scope="col">${statusBadge(s)}</th>`)}<th scope="col">Oldest pending</th><th scope="col">Run time p50</th><th scope="col">p95</th></tr></thead>
<tbody>${
        stats.queues.map((q) =>
          html`<tr><th scope="row"><a href="${basePath}/jobs${queryOf({ queue: q.queue })}">${q.queue}</a></th>${
            allStatuses.map((s) => html`<td>${countLink(q.queue, s, q.counts[s])}</td>`)
          }<td>${age(q.oldestPendingAt, stats.now)}</td><td>${duration(q.p50RunSeconds)}</td><td>${duration(q.p95RunSeconds)}</td></tr>`
        )
      }</tbody></table></div>`
  }</section>
<section aria-labelledby="minutes-title"><h2 id="minutes-title">Finished per minute, last hour</h2>${minuteChart(stats.perMinute)}</section>
<p class="hint">As of ${when(stats.now)}; these figures refresh every 5 seconds, but not while you are in them. The <a href="${basePath}/jobs">jobs list</a> is live.</p></div>`

export const workersPage = (workers: ReadonlyArray<DashboardWorker>, now: Date) =>
  workers.length === 0
    ? html`<p class="empty">No worker has registered yet.</p>`
    : html`<div class="table-wrap"><table class="workers"><caption class="visually-hidden">Workers, alive first</caption>
<thead><tr><th scope="col">Worker</th><th scope="col">State</th><th scope="col">Queues</th><th scope="col">Last heartbeat</th><th scope="col">Jobs held (lease expires)</th></tr></thead><tbody>${
      workers.map((w) =>
        html`<tr><th scope="row"><code>${w.id}</code></th><td>${
          w.alive
            ? html`<span class="status status-running"><span aria-hidden="true">●</span> alive</span>`
            : html`<span class="status status-failed"><span aria-hidden="true">○</span> gone</span>`
        }</td><td>${w.queues.join(", ")}${w.names === null ? "" : html`<br><span class="hint">names: ${w.names.join(", ")}</span>`}</td><td>${
          when(w.lastSeenAt)
        } <span class="hint">(${age(w.lastSeenAt, now)} ago; every ${duration(w.heartbeatIntervalMs / 1000)})</span></td><td>${
          w.held.length === 0 ? html`<span class="none">none</span>` : html`<ul class="held">${
            w.held.map((j) =>
              html`<li><a href="${jobHref(j.id)}">${j.name}</a> ${statusBadge(j.status)} ${Math.round(j.percent)} %, lease until ${
                when(j.leaseExpiresAt)
              }</li>`
            )
          }</ul>${w.heldCount > w.held.length ? html`<p class="hint">and ${w.heldCount - w.held.length} more</p>` : ""}`
        }</td></tr>`
      )
    }</tbody></table></div>`

const endpointState = (endpoint: WebhookEndpoint, health: EndpointHealth | undefined) => {
  if (!endpoint.active) {
    return html`<span class="status status-canceled"><span aria-hidden="true">⊘</span> disabled</span>${
      endpoint.disabledReason === null ? "" : html`<br><span class="hint">${endpoint.disabledReason}</span>`
    }`
  }
  if (health?.failingSince) {
    return html`<span class="status status-failed"><span aria-hidden="true">✗</span> failing</span><br><span class="hint">since ${
      when(health.failingSince)
    }</span>`
  }
  return html`<span class="status status-completed"><span aria-hidden="true">✓</span> healthy</span>`
}

const pendingOf = (health: EndpointHealth | undefined) =>
  health === undefined || health.pending === 0 ? "" : html`<br><span class="hint">${health.pending} waiting</span>`

export const webhooksPage = (
  endpoints: ReadonlyArray<WebhookEndpoint>,
  health: ReadonlyMap<string, EndpointHealth>
) =>
  endpoints.length === 0
    ? html`<p class="empty">No webhook endpoints. Create one with <code>POST /v1/webhooks</code>.</p>`
    : html`<div class="table-wrap"><table class="webhooks"><thead><tr><th scope="col">Endpoint</th><th scope="col">Events</th><th scope="col">State</th><th scope="col">Owner</th><th scope="col">Deliveries</th></tr></thead><tbody>${
      endpoints.map((e) =>
        html`<tr><th scope="row" class="url">${e.url}${e.description === null ? "" : html`<br><span class="hint">${e.description}</span>`}</th><td>${
          e.eventTypes.join(", ")
        } (${e.format})</td><td>${endpointState(e, health.get(e.id))}${pendingOf(health.get(e.id))}</td><td>${e.owner}</td><td><a href="${basePath}/webhooks/${e.id}">delivery log</a></td></tr>`
      )
    }</tbody></table></div>`

export const deliveryLog = (endpoint: WebhookEndpoint, deliveries: ReadonlyArray<WebhookDelivery>, more: Html | "") =>
  html`<p class="url">${endpoint.url}</p>${
    deliveries.length === 0
      ? html`<p class="empty">No deliveries yet.</p>`
      : html`<div class="table-wrap"><table><thead><tr><th scope="col">Created</th><th scope="col">Job</th><th scope="col">Event</th><th scope="col">State</th><th scope="col">Attempts</th></tr></thead><tbody>${
        deliveries.map((d) =>
          html`<tr><td>${when(d.createdAt)}</td><td><a href="${jobHref(d.jobId)}"><code>${d.jobId.slice(0, 8)}…</code></a></td><td><code>${d.type}</code></td><td>${d.status}${
            d.status === "pending" && d.nextAttemptAt !== null ? html`, next ${when(d.nextAttemptAt)}` : ""
          }</td><td><ol class="attempts">${
            d.attempts.map((a) =>
              html`<li>${when(a.startedAt)}: ${a.statusCode === null ? "no answer" : `HTTP ${a.statusCode}`} in ${a.durationMs} ms${
                a.error === null ? "" : html` · ${a.error}`
              }</li>`
            )
          }</ol></td></tr>`
        )
      }</tbody></table></div>`
  }${more}`

/** The sign-in form: a token (the admin token `npm start` prints, or any token of the service). */
export const signInForm = (options: { readonly csrf: string; readonly next: string; readonly error?: string | undefined }) =>
  html`${notice(options.error, "error")}<form method="post" action="${basePath}/login" class="signin">
${csrfInput(options)}<input type="hidden" name="next" value="${options.next}">
<label for="token">Token</label>
<textarea id="token" name="token" rows="4" required autocomplete="off" spellcheck="false" aria-describedby="token-hint"></textarea>
<p id="token-hint" class="hint">A JWT of this service: the admin token <code>npm start</code> prints, or one from <code>npm run token</code>. It is kept in an HttpOnly cookie for this dashboard only.</p>
<button type="submit">Sign in</button></form>`
