/**
 * A failure as the one line a command prints: its message and, when it has one under it, its cause's (the driver's
 * why: `ECONNREFUSED …`, a password refused). Plain code: the bundled command and the modules it loads both use it.
 */
export const oneLine = (error: unknown): string => {
  const messageOf = (e: unknown): string => (typeof e === "object" && e !== null && "message" in e ? String(e.message) : String(e))
  const message = messageOf(error)
  const inner = typeof error === "object" && error !== null && "cause" in error && error.cause !== undefined ? messageOf(error.cause) : ""
  return (inner === "" || message.includes(inner) ? message : `${message}: ${inner}`).split("\n")[0]!
}
