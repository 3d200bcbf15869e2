"""The demo's producer: what a web request handler would do, then return at once."""

from __future__ import annotations

import sys

import kue

import demo_jobs


def main() -> None:
    """Push a few jobs on the default queue (SQLite file ./kue.sqlite3), or show its stats."""
    queue = kue.connect()  # no URL: the default SQLite file in the working directory
    if sys.argv[1:] == ["--stats"]:
        print(f"queue {queue.name!r} after the worker: {queue.stats()}")
        return
    with queue.batch():  # one put_many for all of them
        for video_id in (4871, 4872, 4873):
            queue.push(demo_jobs.ProcessVideo(video_id), priority=10)
        queue.push(demo_jobs.send_welcome_email.message("ada@example.com"))
    print(f"pushed 4 jobs; queue {queue.name!r} holds {queue.stats()}")


if __name__ == "__main__":
    main()
