"""``imdsmock capture``: walk a running IMDS and write a configuration that reproduces it."""
