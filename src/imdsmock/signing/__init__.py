"""Identity document signatures (RSA, PKCS#7) and the certificate that verifies them.

Internal: the public surface is ``imdsmock.__all__``, the CLI and the config keys.
"""
