"""The asyncio edge: the IMDS listener, the control and container-credential listeners, socket
binding, and the real-credential refresher.

Internal: the public surface is ``imdsmock.__all__``, the CLI and the config keys.
"""
