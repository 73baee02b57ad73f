"""The Docker Registry v2 / OCI distribution mirror that clients are pointed at."""
