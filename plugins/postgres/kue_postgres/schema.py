"""kue's tables and functions in PostgreSQL, created on first use and migrated by version.

Names carry the configured schema and prefix (``public`` and ``kue`` by default):

``kue_schema``   one row: the version of this layout the database holds. Opening a backend takes
                 a transaction-level advisory lock, reads it and applies the missing
                 :data:`MIGRATIONS` in order, so processes starting together migrate once.
``kue_jobs``     one row per live job: ``id`` (identity, so also the put order), ``queue``,
                 ``state`` (0 ready, 1 delayed, 2 reserved, 3 buried), ``priority``, ``due``
                 (delayed: when it is ready; reserved: when the lease runs out; both on the
                 server's clock), ``ttr`` (seconds), ``attempts`` (reservations so far, modulo
                 2**32; the whole value is the receipt that tells a holder from a stale one,
                 and a job given back unstarted adds 2**32 - 1 to it), ``buried`` (the bury order,
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

``kue_unique``   one row per (queue, key) :meth:`put_unique` stored a job under: the job's id,
                 when the key expires, and whether it is freed sooner, once that job is done
                 (its row deleted) or buried (``until_done``). Whether a key is held is
                 decided when it is next asked for, from the job's row, so finishing a job
                 (the worker's hot path) writes nothing here. ``kue_put_unique`` checks and
                 puts under the key row's lock, one call.
``kue_claims``   one value per (namespace, key) with its expiry: the compare-and-set of
                 :meth:`kue.records.ClaimStore.claim` (``kue_claim``), through which
                 beanstalkd and SQS take unique jobs and periodic ticks when this database is
                 their ``results`` store.

Expired keys and claims are removed a batch at a time by later writes.

Every operation is one statement (:mod:`kue_postgres.backend` builds them), so one round trip
(a plain reserve takes two when a delayed job or lease is due, or nothing is ready);
the function ``kue_merge_record`` merges a record (as :meth:`update_record` does). Puts,
releases and kicks notify channel ``<schema>.<prefix>_jobs`` with the queue's name; record
changes notify ``<schema>.<prefix>_records`` with ``queue/id``.
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
    def jobs_gate(self) -> str:
        """The lock space of the jobs channel's gate (kue_postgres.listener), by queue."""
        return f"kue-jobs:{self.schema}.{self.prefix}"

    @property
    def records_gate(self) -> str:
        """The lock space of the records channel's gate, by queue."""
        return f"kue-records:{self.schema}.{self.prefix}"

    @property
    def lock_key(self) -> str:
        """Text whose hash is the advisory lock migrations take."""
        return f"kue-schema:{self.schema}.{self.prefix}"


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

"""

# Version 2: unique keys (put_unique) and claims (ClaimStore.claim). Both functions are
# VOLATILE plpgsql, so each statement in them takes a fresh snapshot: after a row lock was
# granted (the caller waited for whoever held it to commit), the next statement sees what that
# holder committed, the job it put included. Read committed is enough; nothing is retried.
_V2 = """
CREATE TABLE {t}unique (
    queue text NOT NULL,
    key text NOT NULL,
    job_id bigint NOT NULL,
    expires timestamptz NOT NULL,
    until_done boolean NOT NULL,
    PRIMARY KEY (queue, key)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05,
        autovacuum_vacuum_cost_delay = 0);
CREATE INDEX {prefix}_unique_expires ON {t}unique (expires);

CREATE TABLE {t}claims (
    namespace text NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    expires timestamptz NOT NULL,
    PRIMARY KEY (namespace, key)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05,
        autovacuum_vacuum_cost_delay = 0);
CREATE INDEX {prefix}_claims_expires ON {t}claims (expires);

CREATE FUNCTION {t}put_unique(p_queue text, p_key text, p_ttl double precision,
                              p_until_done boolean, p_state smallint, p_priority bigint,
                              p_delay double precision, p_ttr double precision, p_body bytea,
                              OUT o_id bigint, OUT o_stored boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    held {t}unique%ROWTYPE;
BEGIN
    LOOP
        -- The key's row exists from here on (a placeholder that holds nothing, if new); a
        -- concurrent first put with the key waits here for the other's commit.
        INSERT INTO {t}unique (queue, key, job_id, expires, until_done)
        VALUES (p_queue, p_key, 0, '-infinity', false) ON CONFLICT DO NOTHING;
        SELECT * INTO held FROM {t}unique WHERE queue = p_queue AND key = p_key FOR UPDATE;
        EXIT WHEN FOUND;  -- else an expiry sweep removed it in between: insert it again
    END LOOP;
    -- A fresh snapshot: the holder's job is visible if it was put, even a moment ago.
    IF held.expires > statement_timestamp() AND (NOT held.until_done OR EXISTS (
            SELECT 1 FROM {t}jobs j WHERE j.id = held.job_id AND j.state IN (0, 1, 2))) THEN
        o_id := held.job_id;
        o_stored := false;
        RETURN;
    END IF;
    INSERT INTO {t}jobs (queue, state, priority, due, ttr, body)
    VALUES (p_queue, p_state, p_priority,
            statement_timestamp() + p_delay * interval '1 second', p_ttr, p_body)
    RETURNING id INTO o_id;
    UPDATE {t}unique SET job_id = o_id,
                         expires = statement_timestamp() + p_ttl * interval '1 second',
                         until_done = p_until_done
    WHERE queue = p_queue AND key = p_key;
    PERFORM pg_notify('{jobs_channel}', p_queue);
    o_stored := true;
END;
$$;

CREATE FUNCTION {t}claim(p_namespace text, p_key text, p_value text, p_ttl double precision,
                         p_expect text) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_value text;
    v_live boolean;
BEGIN
    LOOP
        IF p_expect IS NULL THEN
            INSERT INTO {t}claims (namespace, key, value, expires)
            VALUES (p_namespace, p_key, p_value,
                    statement_timestamp() + p_ttl * interval '1 second')
            ON CONFLICT DO NOTHING;
            IF FOUND THEN
                RETURN NULL;
            END IF;
        END IF;
        -- Locked, this is the row's latest committed version.
        SELECT c.value, c.expires > statement_timestamp() INTO v_value, v_live
        FROM {t}claims c WHERE c.namespace = p_namespace AND c.key = p_key FOR UPDATE;
        IF NOT FOUND THEN
            IF p_expect IS NOT NULL THEN
                RETURN '';
            END IF;
            CONTINUE;  -- an expiry sweep removed it in between: insert again
        END IF;
        IF (p_expect IS NULL AND NOT v_live) OR (p_expect IS NOT NULL AND v_live
                AND v_value = p_expect) THEN
            UPDATE {t}claims SET value = p_value,
                                 expires = statement_timestamp() + p_ttl * interval '1 second'
            WHERE namespace = p_namespace AND key = p_key;
            RETURN NULL;
        END IF;
        RETURN CASE WHEN v_live THEN v_value ELSE '' END;
    END LOOP;
END;
$$;
"""

# Version 3: batched reservations. A job given back unstarted keeps its attempt count but needs
# a receipt no earlier holder has: ``attempts`` holds the count plus a multiple of 2**32
# (kue_postgres.batch.ATTEMPT_SPAN), so it grows to bigint.
_V3 = """
ALTER TABLE {t}jobs ALTER COLUMN attempts TYPE bigint;
"""

#: The layouts in order: MIGRATIONS[n] takes a database from version n to n + 1.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3)


def migration_sql(names: Names, step: int) -> str:
    """The SQL of migration ``step`` (0-based) for these names."""
    return MIGRATIONS[step].format(
        schema=names.schema, prefix=names.prefix, t=names.t,
        records_channel=names.records_channel, jobs_channel=names.jobs_channel,
    )
