/**
 * HTML with escaping by construction: `html` is a tagged template whose interpolations are escaped unless they are
 * `Html` themselves (another template's result, or `trusted`). A page is built only from these, so a job's name, a
 * payload or an error message always reaches the browser as text.
 */

const brand: unique symbol = Symbol.for("jobwatch/Html")

/** Markup that is safe to send as it is. */
export interface Html {
  readonly [brand]: true
  readonly value: string
}

const make = (value: string): Html => ({ [brand]: true, value })

const isHtml = (value: unknown): value is Html => typeof value === "object" && value !== null && brand in value

const entities: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }

/** `text` as HTML text or a quoted attribute's value: `& < > " '` escaped. */
export const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => entities[c]!)

/** What a template may interpolate: text and numbers (escaped), markup, lists of these; nothing for null/false. */
export type Fragment = Html | string | number | null | undefined | false | ReadonlyArray<Fragment>

const render = (fragment: Fragment): string => {
  if (fragment === null || fragment === undefined || fragment === false) return ""
  if (typeof fragment === "string") return escape(fragment)
  if (typeof fragment === "number") return escape(String(fragment))
  if (isHtml(fragment)) return fragment.value
  let out = ""
  for (const item of fragment as ReadonlyArray<Fragment>) out += render(item)
  return out
}

/** The tagged template: `html\`<td>${job.name}</td>\`` escapes the name. */
export const html = (strings: TemplateStringsArray, ...values: ReadonlyArray<Fragment>): Html => {
  let out = strings[0]!
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!
  return make(out)
}

/** Markup written by this module's callers themselves (constants, never input). */
export const trusted = (markup: string): Html => make(markup)

/** A fragment's text. */
export const toString = (fragment: Fragment): string => render(fragment)
