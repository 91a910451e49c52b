"""The Go mock's interface (amazon-ec2-metadata-mock): its command line, config file, ``AEMM_*``
variables and defaults, mapped onto :class:`~imdsmock.config.schema.Config`.

Internal: the public surface is ``imdsmock.__all__``, the CLI and the config keys.
"""
