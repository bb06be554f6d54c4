// jobwatch dashboard: puts the rows the page's event stream sends in place. Each message holds server-rendered HTML
// (escaped on the server, as every page is); an element marked data-live replaces the element of its id when it is
// newer (data-version), or is added where data-into says: at the top of the first page of the jobs list for a job
// that joins it (data-enter), at the end of a job's timeline. No request is made for a job: the stream brings them.
(function () {
  "use strict"
  var MAX_ROWS = 200

  function announce(text) {
    var region = document.getElementById("announcer")
    if (region) region.textContent = text
  }

  function versionOf(element) {
    var v = Number(element.getAttribute("data-version"))
    return Number.isFinite(v) ? v : 0
  }

  function describe(row) {
    var name = row.querySelector("td.name")
    return (name ? name.textContent : "A job") + " is " + row.getAttribute("data-status")
  }

  function place(element) {
    var kind = element.getAttribute("data-live")
    var existing = element.id ? document.getElementById(element.id) : null
    if (existing) {
      if (versionOf(existing) >= versionOf(element)) return
      var before = existing.getAttribute("data-status")
      existing.replaceWith(element)
      var after = element.getAttribute("data-status")
      if (kind === "row" && before !== after && /^(completed|failed|canceled|deleted)$/.test(after || "")) announce(describe(element))
      return
    }
    var into = document.getElementById(element.getAttribute("data-into") || "")
    if (!into) return
    if (kind === "append") {
      into.appendChild(element)
    } else if (kind === "row" && element.getAttribute("data-enter") === "true" && into.getAttribute("data-live-new") === "true") {
      into.insertBefore(element, into.firstChild)
      while (into.rows && into.rows.length > MAX_ROWS) into.deleteRow(into.rows.length - 1)
      var empty = document.querySelector("[data-empty]")
      if (empty) empty.remove()
    }
  }

  // a message's parts may come each in a <template> of its own (a <tr> and a <section> parsed side by side would not
  // survive the parser whole): their [data-live] elements, in order
  function apply(data) {
    var template = document.createElement("template")
    template.innerHTML = data
    var parts = [template.content]
    var nested = template.content.querySelectorAll("template")
    for (var n = 0; n < nested.length; n++) parts.push(nested[n].content)
    for (var p = 0; p < parts.length; p++) {
      var elements = parts[p].querySelectorAll("[data-live]")
      for (var i = 0; i < elements.length; i++) place(elements[i])
    }
  }

  // "Pause updates" (WCAG 2.2.2): messages wait, in order, and are applied on resume; past MAX_WAITING the page
  // says to reload instead of holding more
  var MAX_WAITING = 5000
  var paused = false
  var waiting = []
  var overflowed = false

  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var data = event.detail && event.detail.data
    if (typeof data !== "string") return
    event.preventDefault()
    if (!paused) return apply(data)
    if (waiting.length < MAX_WAITING) waiting.push(data)
    else overflowed = true
    var buttons = document.querySelectorAll("[data-live-toggle]")
    for (var i = 0; i < buttons.length; i++) buttons[i].textContent = "Resume updates (" + waiting.length + " waiting)"
  })

  document.addEventListener("click", function (event) {
    var button = event.target && event.target.closest ? event.target.closest("[data-live-toggle]") : null
    if (!button) return
    paused = !paused
    button.setAttribute("aria-pressed", paused ? "true" : "false")
    button.textContent = paused ? "Resume updates" : "Pause updates"
    if (paused) return announce("Updates paused")
    var held = waiting
    waiting = []
    for (var i = 0; i < held.length; i++) apply(held[i])
    announce(overflowed ? "Updates resumed; some changes were missed while paused: reload the page to see them" : "Updates resumed")
    overflowed = false
  })

  function setState(text, live) {
    var nodes = document.querySelectorAll("[data-live-state]")
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = text
      nodes[i].setAttribute("data-connected", live ? "true" : "false")
    }
  }
  document.addEventListener("htmx:sseOpen", function () { setState("● Live: changes appear as they happen.", true) })
  document.addEventListener("htmx:sseError", function () { setState("○ Reconnecting to live updates…", false) })

  // the overview's figures are replaced every 5 s: not while the focus is in them or their table is open, which the
  // swap would throw away (a keyboard user would be sent back to the top of the page)
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt
    if (!elt || elt.id !== "overview-stats") return
    if (paused || elt.contains(document.activeElement) || elt.querySelector("details[open]")) event.preventDefault()
  })

  // a fragment refused for an ended session: back to sign-in, then here again
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail && event.detail.xhr
    if (xhr && xhr.status === 401) window.location.assign("/dashboard/login?next=" + encodeURIComponent(location.pathname + location.search))
  })
})()
