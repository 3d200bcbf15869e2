"""The web app's jobs: what a request hands off instead of doing itself.

A worker runs them: ``kue-worker --import webapp_jobs -q signups`` (or just ``kue-worker`` in
this folder, where kue.toml says the same).
"""

from __future__ import annotations

import os
from pathlib import Path

import kue

#: Environment variable naming the file the "mail" is written to (default ./outbox.txt).
OUTBOX_VAR = "WEBAPP_OUTBOX"


@kue.job(queue="signups", max_attempts=5)
def send_welcome_email(email: str) -> dict[str, str]:
    """Send the welcome mail; here it is one line appended to the outbox file.

    A real one would call a mail API, which is slow and sometimes fails: exactly what should
    not happen inside a web request. A failure is retried with backoff, up to 5 attempts.
    What it returns is the job's result: the app shows it at ``/jobs/signups/<id>``.
    """
    outbox = Path(os.environ.get(OUTBOX_VAR, "outbox.txt"))
    with outbox.open("a", encoding="utf-8") as fh:
        fh.write(f"welcome mail to {email}\n")
    return {"sent_to": email, "outbox": str(outbox)}
