/** Small statistics helpers for the benchmarks. */

export const quantile = (sorted: ReadonlyArray<number>, q: number): number => {
  if (sorted.length === 0) return Number.NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[i]!
}

export const summarize = (samples: ReadonlyArray<number>) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return {
    n: sorted.length,
    p50: quantile(sorted, 0.5),
    p95: quantile(sorted, 0.95),
    p99: quantile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? Number.NaN
  }
}

export const median = (values: ReadonlyArray<number>) => quantile([...values].sort((a, b) => a - b), 0.5)

export const ms = (value: number) => `${value.toFixed(value < 10 ? 2 : 1)} ms`

/** Milliseconds on the machine's monotonic clock: comparable between processes of one machine. */
export const monotonicMs = () => Number(process.hrtime.bigint()) / 1e6

/** The heap and RSS after two full GCs (run with --expose-gc), in bytes. */
export const memory = () => {
  globalThis.gc?.()
  globalThis.gc?.()
  const { heapUsed, rss } = process.memoryUsage()
  return { heap: heapUsed, rss }
}

export const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`
