-- The append function of the earlier version, which inserts all events with unnest
-- and then links them in a second loop. Tests replace SCHEMA_NAME with their schema.

CREATE OR REPLACE FUNCTION "SCHEMA_NAME"."ledger_append_events"(
    originator_ids uuid[], originator_versions bigint[], topics text[],
    states bytea[], lock_timeout text
) RETURNS SETOF bigint LANGUAGE plpgsql AS $body$
DECLARE
    positions bigint[];
    previous_position bigint;
    previous_digest bytea;
    event record;
    canonical bytea;
BEGIN
    PERFORM set_config('lock_timeout', lock_timeout, true);
    LOCK TABLE "SCHEMA_NAME"."stored_events" IN EXCLUSIVE MODE;
    NOTIFY "stored_events";
    WITH inserted AS (
        INSERT INTO "SCHEMA_NAME"."stored_events" (originator_id, originator_version, topic, state)
        SELECT * FROM unnest(originator_ids, originator_versions, topics, states)
        RETURNING notification_id
    )
    SELECT array_agg(notification_id ORDER BY notification_id) INTO positions FROM inserted;

    SELECT position, decode(hash, 'hex') INTO previous_position, previous_digest
    FROM "SCHEMA_NAME"."ledger_chain" ORDER BY position DESC LIMIT 1;
    IF previous_position IS NULL THEN
        IF EXISTS (SELECT 1 FROM "SCHEMA_NAME"."stored_events" WHERE notification_id < positions[1]) THEN
            RAISE EXCEPTION 'Events without links found; run release-ledger migrate.'
                USING ERRCODE = 'LCH01';
        END IF;
        previous_position := 0;
        previous_digest := decode(repeat('0', 64), 'hex');
    END IF;

    FOR event IN
        SELECT notification_id, originator_id::text AS originator_id, originator_version,
            topic, state
        FROM "SCHEMA_NAME"."stored_events" WHERE notification_id = ANY(positions) ORDER BY notification_id
    LOOP
        canonical := int8send(length(convert_to(event.notification_id::text, 'UTF8'))::bigint)
            || convert_to(event.notification_id::text, 'UTF8')
            || int8send(length(convert_to(event.originator_id, 'UTF8'))::bigint)
            || convert_to(event.originator_id, 'UTF8')
            || int8send(length(convert_to(event.originator_version::text, 'UTF8'))::bigint)
            || convert_to(event.originator_version::text, 'UTF8')
            || int8send(length(convert_to(event.topic, 'UTF8'))::bigint)
            || convert_to(event.topic, 'UTF8')
            || int8send(length(event.state)::bigint) || event.state;
        previous_digest := sha256(previous_digest || canonical);
        INSERT INTO "SCHEMA_NAME"."ledger_chain" (position, previous_position, originator_id, originator_version, hash)
        VALUES (event.notification_id, previous_position, event.originator_id,
                event.originator_version, encode(previous_digest, 'hex'));
        previous_position := event.notification_id;
    END LOOP;
    RETURN QUERY SELECT unnest(positions);
END
$body$
