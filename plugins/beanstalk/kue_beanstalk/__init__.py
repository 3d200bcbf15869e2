"""The beanstalkd backend of kue: ``kue.connect("beanstalk://127.0.0.1:11300", queue="emails")``.

The entry point ``beanstalk`` of group ``kue.backends`` names :mod:`kue_beanstalk.plugin`;
importing this package does not import greenstalk.
"""

__all__: list[str] = []
