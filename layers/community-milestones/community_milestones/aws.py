"""How the functions talk to AWS: short timeouts and a bounded number of retries."""

from __future__ import annotations

from botocore.config import Config

AWS_CONFIG = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})
"""botocore's defaults (60 s to connect and to read) could hold a worker past its own timeout."""
