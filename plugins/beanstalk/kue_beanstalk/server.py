"""The throwaway beanstalkd of tests and benchmarks, described once; kue_contract runs it.

Test-time only: imports kue_contract, which the runtime plugin never needs.
"""

from __future__ import annotations

from kue_contract.servers import ServerSpec

__all__ = ["SERVER"]

#: beanstalkd on loopback without a binlog (so not durable, as the backend declares), unless a
#: test asks for one. ``nox -s images`` builds the image from this machine's beanstalkd.
SERVER = ServerSpec(
    url="beanstalk://{host}:{port}", binary="beanstalkd", args=("-l", "{host}", "-p", "{port}"),
    ready=(b"stats\r\n", b"OK "), image="localhost/kue-beanstalkd:1.12",
    container_port=11300, version=("-v",), durable=("-b", "{scratch}"),
    install_hint="Install beanstalkd (Debian/Ubuntu: `apt-get install beanstalkd`; macOS: "
    "`brew install beanstalkd`).",
)
