"""The control plane: operations on a running instance, the HTTP route table, its OpenAPI document,
and the ``imdsmock ctl`` client.

Internal: the public surface is ``imdsmock.__all__``, the CLI and the config keys.
"""
