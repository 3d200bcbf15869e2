"""The throwaway moto server of tests and benchmarks, described once; kue_contract runs it.

Not ``moto_server`` itself but ``python -m kue_sqs.moto_serial``: moto's server with each SQS
request atomic, as on real SQS (moto alone loses and duplicates messages under concurrent
deletes and receives; see :mod:`kue_sqs.moto_serial`). The image ``nox -s images`` builds runs
the same module on a copy of this Python with moto installed. The URL carries fake credentials
and a region, so boto3 needs nothing from the machine, and names the server's own endpoint:
these servers never reach AWS. Test-time only: imports kue_contract.
"""

from __future__ import annotations

import sys

from kue_contract.servers import ServerSpec

__all__ = ["SERVER"]

SERVER = ServerSpec(
    url="sqs://testing:testing@/?region=us-east-1&endpoint=http://{host}:{port}&prefix=kue-"
    "&create=1",
    binary=sys.executable, args=("-m", "kue_sqs.moto_serial", "-H", "{host}", "-p", "{port}"),
    http="/moto-api/", image="localhost/kue-moto:5", container_port=5000,
    version=("-c", "import importlib.metadata as m; print(m.version('moto'))"),
    python=("moto", "flask", "flask-cors"), name="moto_server (kue_sqs.moto_serial)",
    install_hint="Install moto's server beside kue: pip install 'moto[server]'.",
    contract_jobs=200,  # moto slows down past a few hundred messages in flight
    variants=("fifo=1",),
)
