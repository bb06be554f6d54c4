import { HttpServerResponse } from "@effect/platform"
import { DateTime } from "effect"
import type { JobStatus } from "../Domain/JobStatus.js"
import type { Fragment, Html } from "./html.js"
import { html, toString, trusted } from "./html.js"
import type { Session } from "./session.js"
import { basePath, csrfField } from "./session.js"

/**
 * What every dashboard page shares: the document around it, the security headers (a `Content-Security-Policy`
 * that allows scripts, styles and connections from this origin only: no inline script, no `eval`), and the small
 * pieces rows and pages are made of (statuses with a glyph and a word, progress bars, times).
 */

export const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'"
].join("; ")

export const securityHeaders = {
  "content-security-policy": contentSecurityPolicy,
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
  "x-frame-options": "DENY",
  "cache-control": "no-store"
} as const

/** htmx without `eval`, inline scripts or injected styles (which the policy would refuse), and no history cache. */
const htmxConfig = JSON.stringify({
  allowEval: false,
  allowScriptTags: false,
  includeIndicatorStyles: false,
  historyCacheSize: 0,
  selfRequestsOnly: true
})

export type Section = "overview" | "jobs" | "workers" | "webhooks"

const sections: ReadonlyArray<readonly [Section, string, string]> = [
  ["overview", "Overview", basePath],
  ["jobs", "Jobs", `${basePath}/jobs`],
  ["workers", "Workers", `${basePath}/workers`],
  ["webhooks", "Webhooks", `${basePath}/webhooks`]
]

export const asset = (name: string) => `${basePath}/assets/${name}`

const head = (title: string) =>
  html`<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content="${htmxConfig}"><meta name="referrer" content="same-origin">
<title>${title} · jobwatch</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="${asset("dashboard.css")}">
<script src="${asset("htmx.min.js")}" defer></script><script src="${asset("sse.js")}" defer></script><script src="${
    asset("dashboard.js")
  }" defer></script></head>`

/** A signed-in page: the navigation (the current section marked for screen readers too), the user, sign-out. */
export const page = (session: Session, section: Section, title: string, body: Fragment) =>
  html`<!doctype html>
<html lang="en">${head(title)}
<body><a class="skip" href="#main">Skip to the content</a>
<header class="top"><a class="brand" href="${basePath}">jobwatch</a>
<nav aria-label="Dashboard sections"><ul>${
    sections.map(([key, label, href]) =>
      html`<li><a href="${href}"${key === section ? trusted(` aria-current="page"`) : ""}>${label}</a></li>`
    )
  }</ul></nav>
<div class="who"><span>Signed in as <strong>${session.user.sub}</strong>${session.user.isAdmin ? " (admin: every job)" : ""}</span>
<form method="post" action="${basePath}/logout">${csrfInput(session)}<button type="submit">Sign out</button></form></div>
</header>
<main id="main" tabindex="-1"><h1>${title}</h1>${body}</main>
<div id="announcer" class="visually-hidden" aria-live="polite"></div>
</body></html>`

/** A page without a session (sign-in, errors before it). */
export const bare = (title: string, body: Fragment) =>
  html`<!doctype html>
<html lang="en">${head(title)}
<body><main id="main" class="bare"><h1>${title}</h1>${body}</main></body></html>`

export const csrfInput = (session: Pick<Session, "csrf">) =>
  html`<input type="hidden" name="${csrfField}" value="${session.csrf}">`

/** An HTML response with the dashboard's headers. */
export const respond = (markup: Html, status = 200) =>
  HttpServerResponse.html(toString(markup)).pipe(
    HttpServerResponse.setStatus(status),
    HttpServerResponse.setHeaders(securityHeaders)
  )

/** A redirect after a form (303: the browser follows it with a GET). */
export const seeOther = (location: string) =>
  HttpServerResponse.empty({ status: 303, headers: { ...securityHeaders, location } })

/** Each status's glyph: with its word, colour is never the only sign of a status. */
const glyphs: Record<JobStatus, string> = {
  scheduled: "◷",
  pending: "…",
  claimed: "▸",
  running: "▶",
  completed: "✓",
  failed: "✗",
  canceled: "⊘",
  deleted: "−"
}

export const statusBadge = (status: JobStatus) =>
  html`<span class="status status-${status}"><span aria-hidden="true">${glyphs[status]}</span> ${status}</span>`

const percentText = (percent: number) => `${Math.round(percent * 10) / 10} %`

/** A progress bar with its figure, step and message as text beside it. */
export const progressBar = (
  percent: number,
  step: string | null | undefined,
  message: string | null | undefined,
  label: string
) =>
  html`<div class="progress"><progress max="100" value="${Math.max(0, Math.min(100, percent))}" aria-label="${label}">${
    percentText(percent)
  }</progress><span class="progress-text">${percentText(percent)}${step ? html` · <span class="step">${step}</span>` : ""}${
    message ? html` · <span class="message">${message}</span>` : ""
  }</span></div>`

type TimeInput = Date | DateTime.DateTime | null | undefined

const dateOf = (value: TimeInput) =>
  value === null || value === undefined ? undefined : value instanceof Date ? value : DateTime.toDate(value)

/** A time in UTC, machine-readable in `datetime`: `2026-12-03 14:05:12 UTC`. */
export const when = (value: TimeInput) => {
  const date = dateOf(value)
  if (date === undefined) return html`<span class="none">—</span>`
  const iso = date.toISOString()
  return html`<time datetime="${iso}">${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC</time>`
}

/** A duration in words: `3.2 s`, `4 min 10 s`, `2 h 5 min`. */
export const duration = (seconds: number | null | undefined) => {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—"
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`
  if (seconds < 60) return `${Math.round(seconds * 10) / 10} s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`
  return `${Math.floor(seconds / 86400)} d ${Math.round((seconds % 86400) / 3600)} h`
}

/** An age from `value` to `now`. */
export const age = (value: TimeInput, now: Date) => {
  const date = dateOf(value)
  return date === undefined ? "—" : duration(Math.max(0, (now.getTime() - date.getTime()) / 1000))
}

/** The most of a JSON value a page shows (a payload may be megabytes: the API answers all of it). */
const shownJson = 64 * 1024

/** JSON for reading, pretty-printed, as text; cut after `shownJson` characters, saying so. */
export const jsonBlock = (value: unknown, label: string) => {
  if (value === null || value === undefined) return html`<p class="none">none</p>`
  const text = JSON.stringify(value, null, 2)
  const cut = text.length > shownJson
  // a tab stop so a keyboard can scroll it; a region, since a name on a bare <pre> is not allowed (ARIA 1.2)
  return html`<pre class="json" tabindex="0" role="region" aria-label="${label} (JSON)"><code>${cut ? text.slice(0, shownJson) : text}</code></pre>${
    cut ? html`<p class="hint">Shown: the first ${shownJson} of ${text.length} characters (the API answers all of it).</p>` : ""
  }`
}

/**
 * A table that may be wider than the screen, in a box that scrolls sideways, for a table with nothing focusable in
 * it: a name and a tab stop let a keyboard scroll it too (WCAG 2.1.1). A table with links needs neither: tabbing
 * through them scrolls it.
 */
export const scrollRegion = (label: string, table: Html) =>
  html`<div class="table-wrap" role="region" aria-label="${label}" tabindex="0">${table}</div>`

/** A notice at the top of a page (what an action did, or why it was refused); `role=status` or `alert`. */
export const notice = (text: string | undefined, kind: "ok" | "error" = "ok") =>
  text === undefined || text === ""
    ? ""
    : html`<p class="notice notice-${kind}" role="${kind === "ok" ? "status" : "alert"}">${text}</p>`

/**
 * Where a live page says whether it is connected, with the button that pauses its updates (WCAG 2.2.2): while
 * paused, what arrives waits and is applied in order on resume.
 */
export const liveState = html`<div class="live-bar"><p class="live-state" data-live-state>Connecting to live updates…</p><button type="button" data-live-toggle aria-pressed="false">Pause updates</button></div>`
