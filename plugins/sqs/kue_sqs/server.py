"""Throwaway moto servers for the contract suite and this plugin's own tests.

``local``: moto's server as a child process, ``python -m kue_sqs.moto_serial -H 127.0.0.1 -p
PORT``: ``moto_server`` with each SQS request made atomic, as on real SQS (moto alone loses and
duplicates messages under concurrent deletes and receives; see :mod:`kue_sqs.moto_serial`).
``containers``: the image ``localhost/kue-moto:5`` through testcontainers, which runs the same
module (``containers/build_images.py`` puts it in the image).
``auto``: containers when an engine answers, else local. The URL carries fake credentials and
a region, so boto3 needs nothing from the machine, and always names the loopback endpoint:
these servers never reach AWS.
"""

from __future__ import annotations

import importlib.util
import sys
from contextlib import AbstractContextManager

__all__ = ["IMAGE", "MOTO_PORT", "container_ready", "moto_server", "moto_url"]

#: The container image of moto the contract suite uses, and the port moto listens on in it.
#: ``nox -s images`` builds it (containers/build_images.py) from the moto installed beside
#: kue, tagged with moto's major version; the builder refuses a moto of another major.
IMAGE = "localhost/kue-moto:5"
MOTO_PORT = 5000


def moto_url(host: str, port: int, prefix: str = "kue-") -> str:
    """The ``sqs://`` URL of a moto server at ``host:port``, with fake credentials."""
    return (
        f"sqs://testing:testing@/?region=us-east-1&endpoint=http://{host}:{port}"
        f"&prefix={prefix}&create=1"
    )


def container_ready(host: str, port: int, timeout: float = 30.0) -> None:
    """Wait until moto at ``host:port`` answers HTTP (it takes a second or two to import)."""
    import time
    import urllib.error
    import urllib.request

    from kue_contract.servers import ServerUnavailable  # type: ignore[import-untyped, unused-ignore]

    deadline = time.monotonic() + timeout
    while True:
        try:
            # moto's own API, loopback only; any HTTP answer means the server is up.
            with urllib.request.urlopen(f"http://{host}:{port}/moto-api/", timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"moto at {host}:{port} did not answer HTTP")
        time.sleep(0.1)


def _container() -> AbstractContextManager[str]:
    from kue_contract.servers import (  # type: ignore[import-untyped, unused-ignore]
        require_engine,
        require_image,
        testcontainer,
    )

    require_engine("moto_server must then be on PATH: pip install 'moto[server]'.")
    require_image(IMAGE, f"moto_server listening on {MOTO_PORT}")
    server: AbstractContextManager[str] = testcontainer(
        IMAGE, MOTO_PORT, moto_url, None, container_ready
    )
    return server


def moto_server(mode: str) -> AbstractContextManager[str]:
    """A context manager that starts moto as ``mode`` says and yields its ``sqs://`` URL."""
    from kue_contract.servers import (  # type: ignore[import-untyped, unused-ignore]
        container_engine_answers,
        local_process,
    )

    if mode == "containers" or (mode == "auto" and container_engine_answers()):
        return _container()
    hint = "Install moto's server: pip install 'moto[server]'."
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        from kue_contract.servers import (  # type: ignore[import-untyped, unused-ignore]
            ServerUnavailable,
        )

        raise ServerUnavailable(f"moto's server is not installed beside kue. {hint}")
    # This interpreter, so the child imports the same moto and kue_sqs.
    server: AbstractContextManager[str] = local_process(
        sys.executable,
        args=lambda port, scratch: ["-m", "kue_sqs.moto_serial", "-H", "127.0.0.1",
                                    "-p", str(port)],
        url=lambda port: moto_url("127.0.0.1", port),
        install_hint=hint,
        name="moto_server (kue_sqs.moto_serial)",
    )
    return server
