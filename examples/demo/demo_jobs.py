"""The demo's jobs: one function job and one class job."""

from __future__ import annotations

import kue


@kue.job(max_attempts=3)
def send_welcome_email(address: str) -> None:
    """Pretend to send an email."""
    print(f"  -> welcome email sent to {address}", flush=True)


class ProcessVideo(kue.Job):
    """Pretend to transcode a video."""

    def __init__(self, video_id: int) -> None:
        self.video_id = video_id

    def run(self) -> None:
        """Transcode (here: print)."""
        print(f"  -> video {self.video_id} transcoded", flush=True)
