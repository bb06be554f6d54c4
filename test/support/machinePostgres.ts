import pg from "pg"

/** CI's PostgreSQL (15) on loopback, trust auth. */
export const machinePostgres = "postgres://postgres@127.0.0.1:5432/test"

/** Whether a PostgreSQL answers `SELECT 1` at `url` within 2 s. */
export const answers = async (url: string): Promise<boolean> => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
  try {
    await client.connect()
    await client.query("SELECT 1")
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => undefined)
  }
}
