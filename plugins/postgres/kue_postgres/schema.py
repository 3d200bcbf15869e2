"""kue's tables and functions in PostgreSQL, created on first use and migrated by version.

Names carry the configured schema and prefix (``public`` and ``kue`` by default):

``kue_schema``   one row: the version of this layout the database holds. Opening a backend takes
                 a transaction-level advisory lock, reads it and applies the missing
                 :data:`MIGRATIONS` in order, so processes starting together migrate once.
``kue_jobs``     one row per live job: ``id`` (identity, so also the put order), ``queue``,
                 ``state`` (0 ready, 1 delayed, 2 reserved, 3 buried), ``priority``, ``due``
                 (delayed: when it is ready; reserved: when the lease runs out; both on the
                 server's clock), ``ttr`` (seconds), ``attempts`` (reservations so far: also
                 the receipt that tells a holder from a stale one), ``buried`` (the bury order,
                 from the sequence ``kue_bury_order``), ``body``.
                 Indexes: the primary key; ``kue_jobs_ready (queue, priority, id) WHERE state =
                 0`` (the reserve order); ``kue_jobs_timed (queue, due) WHERE state IN (1, 2)``
                 (due delayed jobs, lapsed leases, the next due time); ``kue_jobs_buried (queue,
                 buried) WHERE state = 3``. Storage: ``fillfactor = 90`` and an autovacuum that
                 starts after 1,000 dead rows whatever the table's size and is not throttled,
                 because a queue table turns over its rows all day.
``kue_records``  one JSON document per (queue, job id) with its expiry: the status, result,
                 last error and progress of jobs (text ids, so the table can also be another
                 backend's ``results`` store).

Functions (plpgsql, one round trip each): ``kue_reserve(queues)`` moves due delayed jobs and
lapsed leases back to ready and reserves the most urgent ready job with ``FOR UPDATE SKIP
LOCKED``, or says in how many seconds the next one is due; ``kue_finish`` deletes a held job and
merges its record in the same transaction; ``kue_finish_reserve`` does both and reserves the
next. Puts, releases and kicks notify channel ``<schema>.<prefix>_jobs`` with the queue's name;
record changes notify ``<schema>.<prefix>_records`` with ``queue/id``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "Names", "migration_sql"]


@dataclass(frozen=True)
class Names:
    """The qualified names of one schema and prefix (both checked identifiers)."""

    schema: str
    prefix: str

    @property
    def t(self) -> str:
        """Qualified prefix of every table and function: ``public.kue_``."""
        return f"{self.schema}.{self.prefix}_"

    @property
    def jobs_channel(self) -> str:
        """The channel puts, releases and kicks notify, with the queue's name."""
        return f"{self.schema}.{self.prefix}_jobs"

    @property
    def records_channel(self) -> str:
        """The channel record changes notify, with ``queue/id``."""
        return f"{self.schema}.{self.prefix}_records"

    @property
    def lock_key(self) -> str:
        """Text whose hash is the advisory lock migrations take."""
        return f"kue-schema:{self.schema}.{self.prefix}"


#: The columns kue_reserve and kue_finish_reserve return: a job, or none and the seconds
#: until the next due job (NULL: none), and whether the finished job was no longer held.
_RESERVED = ("job_id bigint, job_queue text, job_body bytea, job_priority bigint, "
             "job_attempts integer, job_ttr double precision, wait double precision, "
             "lost boolean")

_V1 = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE {t}jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue text NOT NULL,
    state smallint NOT NULL,
    priority bigint NOT NULL,
    due timestamptz,
    ttr double precision NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    buried bigint,
    body bytea NOT NULL
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000,
        autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000,
        autovacuum_vacuum_cost_delay = 0);
CREATE INDEX {prefix}_jobs_ready ON {t}jobs (queue, priority, id) WHERE state = 0;
CREATE INDEX {prefix}_jobs_timed ON {t}jobs (queue, due) WHERE state IN (1, 2);
CREATE INDEX {prefix}_jobs_buried ON {t}jobs (queue, buried) WHERE state = 3;
CREATE SEQUENCE {t}bury_order;

CREATE TABLE {t}records (
    queue text NOT NULL,
    id text NOT NULL,
    fields jsonb NOT NULL,
    expires timestamptz,
    PRIMARY KEY (queue, id)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05,
        autovacuum_vacuum_cost_delay = 0);
CREATE INDEX {prefix}_records_expires ON {t}records (expires) WHERE expires IS NOT NULL;

CREATE FUNCTION {t}merge_record(p_queue text, p_id text, p_set jsonb, p_unset text[],
                                p_ttl double precision) RETURNS void LANGUAGE sql AS $$
    INSERT INTO {t}records AS r (queue, id, fields, expires)
    VALUES (p_queue, p_id, p_set, statement_timestamp() + p_ttl * interval '1 second')
    ON CONFLICT (queue, id) DO UPDATE SET
        fields = CASE WHEN r.expires <= statement_timestamp() THEN excluded.fields
                      ELSE (r.fields - p_unset) || excluded.fields END,
        expires = excluded.expires;
    SELECT pg_notify('{records_channel}', p_queue || '/' || p_id);
$$;

CREATE FUNCTION {t}reserve(queues text[]) RETURNS TABLE ({reserved})
LANGUAGE plpgsql AS $$
DECLARE
    now_ timestamptz := statement_timestamp();
    picked bigint;
BEGIN
    -- Due delayed jobs and lapsed leases go back to ready first (a cheap index probe when
    -- there are none); rows another transaction holds are left for it.
    UPDATE {t}jobs SET state = 0, due = NULL WHERE id IN (
        SELECT j.id FROM {t}jobs j
        WHERE j.queue = ANY (queues) AND j.state IN (1, 2) AND j.due <= now_
        FOR UPDATE SKIP LOCKED);
    IF cardinality(queues) = 1 THEN
        SELECT j.id INTO picked FROM {t}jobs j
        WHERE j.queue = queues[1] AND j.state = 0
        ORDER BY j.priority, j.id LIMIT 1 FOR UPDATE SKIP LOCKED;
    ELSE
        -- Each queue's first job comes off its index; only those few are compared.
        SELECT f.id INTO picked FROM unnest(queues) AS q(name) CROSS JOIN LATERAL (
            SELECT j.id, j.priority FROM {t}jobs j
            WHERE j.queue = q.name AND j.state = 0
            ORDER BY j.priority, j.id LIMIT 1 FOR UPDATE SKIP LOCKED) f
        ORDER BY f.priority, f.id LIMIT 1;
    END IF;
    IF picked IS NOT NULL THEN
        RETURN QUERY UPDATE {t}jobs j
            SET state = 2, attempts = j.attempts + 1, due = now_ + j.ttr * interval '1 second'
            WHERE j.id = picked
            RETURNING j.id, j.queue, j.body, j.priority, j.attempts, j.ttr,
                      NULL::double precision, false;
        RETURN;
    END IF;
    RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::bytea, NULL::bigint, NULL::integer,
        NULL::double precision, extract(epoch FROM min(n.due) - now_)::double precision, false
        FROM unnest(queues) AS q(name) CROSS JOIN LATERAL (
            SELECT j.due FROM {t}jobs j WHERE j.queue = q.name AND j.state IN (1, 2)
            ORDER BY j.due LIMIT 1) n;
END $$;

CREATE FUNCTION {t}finish(p_id bigint, p_attempts integer, p_set jsonb, p_unset text[],
                          p_ttl double precision) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    q text;
BEGIN
    DELETE FROM {t}jobs WHERE id = p_id AND state = 2 AND attempts = p_attempts
        AND due > statement_timestamp() RETURNING queue INTO q;
    IF q IS NULL THEN
        RETURN NULL;
    END IF;
    IF p_set IS NOT NULL THEN
        PERFORM {t}merge_record(q, p_id::text, p_set, p_unset, p_ttl);
    ELSE
        PERFORM pg_notify('{records_channel}', q || '/' || p_id);
    END IF;
    RETURN q;
END $$;

CREATE FUNCTION {t}finish_reserve(p_id bigint, p_attempts integer, p_set jsonb,
                                  p_unset text[], p_ttl double precision, queues text[])
RETURNS TABLE ({reserved}) LANGUAGE plpgsql AS $$
BEGIN
    IF {t}finish(p_id, p_attempts, p_set, p_unset, p_ttl) IS NULL THEN
        RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::bytea, NULL::bigint, NULL::integer,
            NULL::double precision, NULL::double precision, true;
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM {t}reserve(queues);
END $$;
"""

#: The layouts in order: MIGRATIONS[n] takes a database from version n to n + 1.
MIGRATIONS: tuple[str, ...] = (_V1,)


def migration_sql(names: Names, step: int) -> str:
    """The SQL of migration ``step`` (0-based) for these names."""
    return MIGRATIONS[step].format(
        schema=names.schema, prefix=names.prefix, t=names.t, reserved=_RESERVED,
        records_channel=names.records_channel, jobs_channel=names.jobs_channel,
    )
