-- The trace context a job was created in (issue 22): the W3C `traceparent` (55 characters) and `tracestate` given at
-- enqueue (a traceparent header, the body's fields, or the span of a producer that exports traces), handed to the
-- worker that claims the job, whose span for running it links there. Nullable columns without a default: adding
-- them rewrites no row, and a job enqueued without one stores nothing but its null bits.
ALTER TABLE jobs ADD COLUMN traceparent text, ADD COLUMN tracestate text;
