"""Configuration: the schema (frozen dataclasses, one declaration per key), loading (flags > env >
file > defaults), the rules that span keys, defaults and the dump.

Internal: the public surface is ``imdsmock.__all__``, the CLI and the config keys.
"""
