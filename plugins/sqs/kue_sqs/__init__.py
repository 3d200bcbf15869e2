"""kue's Amazon SQS backend, ``sqs://``.

``kue.connect("sqs://?region=us-east-1&prefix=kue-&create=1", queue="emails")``. The plugin
module is :mod:`kue_sqs.plugin`; the URL's parameters are described in :mod:`kue_sqs.settings`,
the mapping of kue's verbs onto SQS in :mod:`kue_sqs.backend`. Importing this package does not
import boto3; opening a queue does.
"""

from __future__ import annotations

from kue_sqs.errors import PutManyFailed, SqsError

__all__ = ["PutManyFailed", "SqsError"]
