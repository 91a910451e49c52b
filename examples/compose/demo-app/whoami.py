"""Print, as JSON, what the AWS SDK for Python learns from IMDS: credentials and region.

Uses boto3/botocore's own resolution (the instance-profile provider and the IMDS region
provider), so it honours AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_EC2_METADATA_V1_DISABLED and
the other standard settings exactly as an application would.
"""

import json

import boto3
import botocore.session
from botocore.utils import IMDSRegionProvider


def main() -> None:
    """Resolve credentials and region through the SDK and print them."""
    core = botocore.session.get_session()
    credentials = boto3.Session(botocore_session=core).get_credentials()
    region = IMDSRegionProvider(core).provide()
    print(
        json.dumps(
            {
                "credential_method": credentials.method if credentials else None,
                "access_key_id": credentials.access_key if credentials else None,
                "has_token": bool(credentials and credentials.token),
                "region": region,
            }
        )
    )


if __name__ == "__main__":
    main()
