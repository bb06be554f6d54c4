-- The stream of all events (a user's SSE stream, the EventsWatch RPC) needs a position that never lets a late
-- committer slip behind a reader. A plain sequence does not do: a transaction that took a smaller number can
-- commit after a larger one was read. The position here is the writing transaction's id (xid8, PostgreSQL 13+)
-- then the job and version; readers take only events of transactions below their snapshot's xmin, which have all
-- ended, so whatever commits later has an id at or above that xmin, beyond every position already read.
ALTER TABLE job_events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX job_events_stream ON job_events (tx, job_id, version);
