// The raw-SQL floor of `npm run bench -- latency`, shared by the bench and its worker process: a bare table whose
// rows complete with an UPDATE that NOTIFYs in the same statement.
import pg from "pg"

/** The floor's table and channel in `schema`. */
export const floorOf = (schema: string) => ({ table: `"${schema}".bench_floor`, channel: `${schema}.bench_floor` })

/** `n` bare, connected pg clients. */
export const connectClients = (url: string, n: number) =>
  Promise.all(Array.from({ length: n }, async () => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    return client
  }))

/** Completes floor row `id` on `client`: one UPDATE with its pg_notify. */
export const completeFloor = (client: pg.Client, schema: string, id: string) => {
  const { channel, table } = floorOf(schema)
  return client.query(
    `WITH u AS (UPDATE ${table} SET status = 'completed' WHERE id = $1 RETURNING id) SELECT pg_notify($2, $1::text) FROM u`,
    [id, channel]
  )
}
