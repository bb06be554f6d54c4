-- The retry delay of an attempt in whole ms: min(max, base × multiplier^(attempt − 1)) jittered between half and
-- all of it by `jitter` (0–1). Plain SQL, so it is inlined into the set-based statements that use it too.
CREATE OR REPLACE FUNCTION job_retry_delay_ms(base_ms bigint, max_ms bigint, multiplier double precision, attempt integer,
  jitter double precision) RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT round(least(max_ms, base_ms * power(multiplier, greatest(attempt - 1, 0))) * (0.5 + 0.5 * jitter))
$$;
