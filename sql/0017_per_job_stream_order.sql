-- Per-job order on the stream of all events. Its position began with the writing transaction's id (sql/0006), but
-- transaction ids are taken in start order, not commit order: a transaction that took its id, then waited on a
-- job's row lock, writes that job's next version under a smaller id than the one that wrote the version before,
-- and a stream in id order delivered version 6 before version 5. The position's first part (`job_events.tx`) is
-- now the greater of the writer's id and the job's previous event's: per job it never goes down, so per job the
-- stream order is version order. It is still at or above the writer's id, so the xmin rule keeps holding: an
-- event is read only once every transaction below its position has ended. `jobs.event_tx` carries the job's last
-- position to the next writer, which holds the row lock when it reads it.
ALTER TABLE jobs ADD COLUMN event_tx xid8;
