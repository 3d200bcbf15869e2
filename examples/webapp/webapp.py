"""A small Flask app that hands slow work to kue: ``POST /signup`` answers 202 at once.

Run it with ``flask --app webapp run`` in this folder; Flask calls :func:`create_app`.
"""

from __future__ import annotations

import re

from flask import Flask, jsonify, request, url_for
from flask.typing import ResponseReturnValue

import kue

import webapp_jobs

#: Good enough to catch typing mistakes; the mail itself is the real check.
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def create_app(kue_url: str | None = None) -> Flask:
    """The app, with one kue connection for its whole life.

    :param kue_url: backend URL; None reads KUE_URL, kue.toml, and so on, as every kue
        program does (in this folder: ./kue.sqlite3).
    """
    app = Flask(__name__)
    # One connection for the app, not one per request: opening a backend reopens its
    # database or reconnects to its server. Backends are safe to share between threads.
    signups = kue.connect(kue_url, queue=webapp_jobs.send_welcome_email.job_class.queue)
    app.extensions["kue"] = signups

    @app.post("/signup")
    def signup() -> ResponseReturnValue:
        """Queue the welcome mail for ``email`` (JSON or form field) and answer at once."""
        payload = request.get_json(silent=True)
        email = payload.get("email") if isinstance(payload, dict) else request.form.get("email")
        if not isinstance(email, str) or not EMAIL.fullmatch(email):
            return jsonify(error="send an email address as the field 'email'"), 400
        job_id = signups.push(webapp_jobs.send_welcome_email.message(email))
        return jsonify(
            job_id=job_id, queue=signups.name,
            status=url_for("job_status", queue=signups.name, job_id=job_id),
            stats=url_for("queue_stats", queue=signups.name),
        ), 202

    @app.get("/jobs/<queue>/<job_id>")
    def job_status(queue: str, job_id: str) -> ResponseReturnValue:
        """Where the job is, and once it is done its result, as JSON (404 if unknown)."""
        status = kue.Queue(signups.backend, queue).status(job_id)
        if status is None:
            return jsonify(error=f"no job {job_id} on queue {queue}"), 404
        error = None if status.error is None else {
            "type": status.error["type"], "message": status.error["message"]}
        return jsonify(
            job_id=job_id, queue=queue, state=status.state.value, attempts=status.attempts,
            result=status.result, error=error, progress=status.progress,
            enqueued_at=status.enqueued_at, finished_at=status.finished_at,
        )

    @app.get("/jobs/<queue>/stats")
    def queue_stats(queue: str) -> ResponseReturnValue:
        """How many jobs ``queue`` holds in each state, as JSON."""
        stats = kue.Queue(signups.backend, queue).stats()
        return jsonify(queue=queue, ready=stats.ready, delayed=stats.delayed,
                       reserved=stats.reserved, buried=stats.buried)

    return app
