"""One instance as plain data: the tree of leaves, its documents, credentials, and the timeline
that scenarios compile to.

Internal: the public surface is ``imdsmock.__all__``, the CLI and the config keys.
"""
