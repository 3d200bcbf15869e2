"""The throwaway moto server of tests and benchmarks, described once; kue_contract runs it.

``python -m kue_sqs.moto_serial``: moto's server with each SQS request atomic, as on real SQS
(see :mod:`kue_sqs.moto_serial`); the image runs it on a copy of this Python. The URL has fake
credentials and the server's own endpoint: never AWS. Test-time only: imports kue_contract.
"""

from __future__ import annotations

import sys

from kue_contract.servers import ServerSpec

__all__ = ["SERVER"]

SERVER = ServerSpec(
    url="sqs://testing:testing@/?region=us-east-1&endpoint=http://{host}:{port}&prefix=kue-"
    "&create=1",
    binary=sys.executable, args=("-m", "kue_sqs.moto_serial", "-H", "{host}", "-p", "{port}"),
    ready="/moto-api/", image="localhost/kue-moto:5", container_port=5000,
    version=("-c", "import importlib.metadata as m; print(m.version('moto'))"),
    python=("moto", "flask", "flask-cors"), name="moto_server (kue_sqs.moto_serial)",
    install_hint="Install moto's server beside kue: pip install 'moto[server]'.",
    contract_jobs=200,  # moto slows down past a few hundred messages in flight
    variants=("fifo=1",),
)
