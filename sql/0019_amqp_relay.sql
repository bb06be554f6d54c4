-- The event bus relay's cursor (src/Amqp/Relay.ts): the position in the commit-safe stream of all events
-- (tx, job_id, version) up to which every event has been published and confirmed by the broker. One row, written
-- by the elected relay after each batch's confirms; it starts at the stream's position when the relay first runs.
CREATE TABLE amqp_relay (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  tx xid8 NOT NULL,
  job_id uuid NOT NULL,
  version integer NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
