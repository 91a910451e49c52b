"""The pure core: the compiled response table, snapshots and state, the IMDS handler, tokens, the
client gate, faults and the request log. No sockets; time is passed in.

Internal: the public surface is ``imdsmock.__all__``, the CLI and the config keys.
"""
