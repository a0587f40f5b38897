-- The vendors' part of an event's trace context (W3C `tracestate`), kept beside its
-- `traceparent` and passed on with every attempt. Set by POST /v1/events (the header) and the
-- Rust crate (`NewEvent::tracestate`); herald.publish in SQL takes a traceparent only.
ALTER TABLE herald.events ADD COLUMN tracestate text;
