"""imdsmock: a faithful EC2 Instance Metadata Service for laptops, compose stacks and CI."""

__version__ = "0.1.0"
