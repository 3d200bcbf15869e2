"""The one statement behind ``settle_many`` and ``reserve_many`` (kue.spi.BatchBackend).

It acks finished jobs (deletes each one still held and merges its record), gives back jobs
not started (ready again at once in their place, the attempt not counted), then reserves up
to n jobs, most urgent first, with ``FOR UPDATE SKIP LOCKED``: one round trip, one
transaction. Parts with nothing to do are left out, so each shape is its own prepared
statement. A call that gives jobs back and reserves sends the reserve as a second statement in
the same pipeline (still one round trip): one statement's snapshot would not see the jobs it
gave back, and they may be the most urgent.

Attempts and receipts: a reservation's receipt is the row's ``attempts`` column; its attempt
count is that modulo :data:`ATTEMPT_SPAN`. A give-back takes one attempt off and adds the span,
so the attempt is not counted while the receipt still changes: a stale holder's receipt never
matches again.
"""

from __future__ import annotations

from dataclasses import dataclass

from kue_postgres.listener import gate_sql
from kue_postgres.schema import Names

__all__ = ["ATTEMPT_SPAN", "Shape", "settle_sql"]

#: Receipts step by this on a give-back; the attempt count is ``attempts % ATTEMPT_SPAN``.
ATTEMPT_SPAN = 2**32


@dataclass(frozen=True)
class Shape:
    """Which parts one settle statement has."""

    acks: bool  #: finished jobs to delete
    records: bool  #: some of them with records to merge
    back: bool  #: unstarted jobs to give back
    reserve: bool  #: n > 0: reserve after
    multi: bool  #: more than one queue to reserve from


def settle_sql(names: Names, shape: Shape) -> str:
    """The statement of ``shape``.

    Parameters: ``aid``, ``arc`` (acks' ids and receipts), ``aset``, ``aun``, ``attl`` (per ack:
    the record's fields to set as JSON or NULL, the names to remove as a JSON array, the ttl);
    ``bid``, ``brc`` (jobs to give back); ``qs``, ``q1`` (queues) and ``n``.

    Columns: the reserved job (id, queue, body, priority, attempts, ttr; NULLs when none, in
    one row), then the 1-based positions of the acks whose job was no longer held.
    """
    t, parts = names.t, []
    held = "j.state = 2 AND j.due > statement_timestamp()"
    if shape.acks:
        parts.append(
            # Arrays go in binary (%b): psycopg escapes a text array's JSON elements with a
            # regular expression per element, which cost more than the round trip.
            "acks AS (SELECT * FROM unnest(%(aid)b::bigint[], %(arc)b::bigint[], "
            "%(aset)b::text[]::jsonb[], %(aun)b::text[]::jsonb[], %(attl)b::float8[]) WITH "
            "ORDINALITY AS a(id, rc, fset, funset, ttl, n))")
        parts.append(f"fin AS (DELETE FROM {t}jobs j USING acks a WHERE j.id = a.id AND "
                     f"j.attempts = a.rc AND {held} RETURNING j.id, j.attempts, j.queue)")
        if shape.records:
            # The names to remove come from the ack that matched (fin's row), so a merge
            # into a record that is there already stays one atomic upsert.
            parts.append(
                f"rec AS (INSERT INTO {t}records AS r (queue, id, fields, expires) "
                "SELECT fin.queue, fin.id::text, a.fset, statement_timestamp() + a.ttl * "
                "interval '1 second' FROM fin JOIN acks a ON a.id = fin.id AND a.rc = "
                "fin.attempts WHERE a.fset IS NOT NULL ON CONFLICT (queue, id) DO UPDATE SET "
                "fields = CASE WHEN r.expires <= statement_timestamp() THEN excluded.fields "
                "ELSE (r.fields - ARRAY(SELECT jsonb_array_elements_text(a.funset) FROM fin "
                "JOIN acks a ON a.id = fin.id AND a.rc = fin.attempts WHERE fin.id::text = "
                "r.id AND fin.queue = r.queue)) || excluded.fields END, "
                "expires = excluded.expires RETURNING 1)")
        # Past the gate only: while some process waits for this queue's records.
        parts.append(f"note AS (SELECT pg_notify('{names.records_channel}', "
                     "fin.queue || '/' || fin.id) FROM fin WHERE NOT "
                     f"{gate_sql(names.records_gate, 'fin.queue', exclusive_try=True)})")
    if shape.back:
        parts.append(
            f"back AS (UPDATE {t}jobs j SET state = 0, due = NULL, attempts = j.attempts - 1 "
            f"+ {ATTEMPT_SPAN} FROM unnest(%(bid)b::bigint[], %(brc)b::bigint[]) AS b(id, rc) "
            f"WHERE j.id = b.id AND j.attempts = b.rc AND {held} RETURNING j.queue)")
        parts.append(f"wake AS (SELECT pg_notify('{names.jobs_channel}', x.queue) FROM "
                     "(SELECT DISTINCT queue FROM back) x)")
    if shape.reserve:
        lock = "LIMIT %(n)s FOR UPDATE SKIP LOCKED"
        if shape.multi:
            ready = ("SELECT f.id, f.priority FROM unnest(%(qs)s::text[]) AS q(name) CROSS JOIN "
                     f"LATERAL (SELECT j.id, j.priority FROM {t}jobs j WHERE j.queue = q.name "
                     f"AND j.state = 0 ORDER BY j.priority, j.id {lock}) f")
            which = "j.queue = ANY (%(qs)s::text[])"
        else:
            ready = (f"SELECT j.id, j.priority FROM {t}jobs j WHERE j.queue = %(q1)s AND "
                     f"j.state = 0 ORDER BY j.priority, j.id {lock}")
            which = "j.queue = %(q1)s"
        parts.append(f"r AS ({ready})")
        parts.append(f"d AS (SELECT j.id, j.priority FROM {t}jobs j WHERE {which} AND j.state "
                     f"IN (1, 2) AND j.due <= statement_timestamp() ORDER BY j.priority, j.id "
                     f"{lock})")
        parts.append("best AS (SELECT c.id FROM (SELECT * FROM r UNION ALL SELECT * FROM d) c "
                     "ORDER BY c.priority, c.id LIMIT %(n)s)")
        parts.append(f"took AS (UPDATE {t}jobs j SET state = 2, attempts = j.attempts + 1, "
                     "due = statement_timestamp() + j.ttr * interval '1 second' FROM best "
                     "WHERE j.id = best.id RETURNING j.id, j.queue, j.body, j.priority, "
                     "j.attempts, j.ttr)")
        source = "(SELECT 1) AS one LEFT JOIN took ON true"
        cols = "took.id, took.queue, took.body, took.priority, took.attempts, took.ttr"
        order = " ORDER BY took.priority, took.id"
    else:
        source, cols, order = "(SELECT 1) AS one", "NULL, NULL, NULL, NULL, NULL, NULL", ""
    lost = ("(SELECT array_agg(a.n ORDER BY a.n) FROM acks a WHERE NOT EXISTS (SELECT 1 FROM "
            "fin WHERE fin.id = a.id AND fin.attempts = a.rc))" if shape.acks else "NULL")
    # The notifying parts run only if read: count them in.
    touch = " + ".join([*(["(SELECT count(*) FROM note)"] if shape.acks else []),
                        *(["(SELECT count(*) FROM wake)"] if shape.back else [])]) or "0"
    head = ("WITH " + ", ".join(parts) + " ") if parts else ""
    return f"{head}SELECT {cols}, {lost}, {touch} FROM {source}{order}"
