-- Wakes the outbox relay in other processes (the worker role) as soon as a
-- transaction that wrote messages commits: PostgreSQL delivers the
-- notification at commit, once per transaction. The relay still polls as a
-- backstop, so a notification lost to a reconnect only costs a poll. The
-- payload names the schema: deployments sharing a database (one schema
-- each) wake only their own relay.
CREATE FUNCTION outbox_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('swiftdrop_outbox', current_schema());
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_announce
    AFTER INSERT ON outbox
    FOR EACH STATEMENT
    EXECUTE FUNCTION outbox_announce();
