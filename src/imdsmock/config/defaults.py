"""The default instance: AWS's Go mock's meta-data values, made self-consistent.

Users of amazon-ec2-metadata-mock assert on these values (instance id, MAC, IPs, AMI,
instance type, role name), so they are kept. Everything the Go mock got inconsistent (its
identity document names another account, AZ, IP and AMI) is derived from these facts in
:mod:`imdsmock.instance.model` instead of being copied.
"""

from __future__ import annotations

__all__ = ["AEMM_PUBLIC_KEY", "AEMM_USER_DATA", "VERSIONS"]

# AWS's Go mock's default public key: an example key, not a secret.
AEMM_PUBLIC_KEY = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC/JxGByvHDHgQAU+0nRFWdvMPi22OgNUn9ansrI8QN1ZJGxD1ML8"
    "DRnJ3Q3zFKqqjGucfNWW0xpVib+ttkIBp8G9P/EOcX9C3FF63O3SnnIUHJsp5faRAZsTJPx0G5HUbvhBvnAcCtSqQg"
    "mr02c1l582vAWx48pOmeXXMkl9qe9V/s7K3utmeZkRLo9DqnbsDlg5GWxLC/rWKYaZR66CnMEyZ7yBy3v3abKaGGRo"
    "vLkHNAgWjSSgmUTI1nT5/S2OLxxuDnsC7+BiABLPaqlIE70SzcWZ0swx68Bo2AY9T9ymGqeAM/1T4yRtg0sPB98TpT"
    "7WrY5A3iia2UVtLO/xcTt test"
)

# The Go mock's default user data (base64 "MTIzNCxqb2huLHJlYm9vdCx0cnVlCg==").
AEMM_USER_DATA = b"1234,john,reboot,true\n"

# Metadata versions as real IMDS lists them at "/", oldest first.
VERSIONS: tuple[str, ...] = (
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "2011-01-01",
    "2011-05-01",
    "2012-01-12",
    "2014-02-25",
    "2014-11-05",
    "2015-10-20",
    "2016-04-19",
    "2016-06-30",
    "2016-09-02",
    "2018-03-28",
    "2018-08-17",
    "2018-09-24",
    "2019-10-01",
    "2020-10-27",
    "2021-01-03",
    "2021-03-23",
    "2021-07-15",
    "2022-07-09",
    "2022-09-24",
    "latest",
)
