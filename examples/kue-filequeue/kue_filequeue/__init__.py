"""kue-filequeue: an example kue backend, one directory per queue and one JSON file per job.

``kue.connect("filequeue:///var/lib/myapp/jobs", queue="emails")``. The entry point
``filequeue`` of group ``kue.backends`` names :mod:`kue_filequeue.plugin`; the backend is
:class:`kue_filequeue.backend.FileQueueBackend`.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
