"""How a job fails: one line for the platform, never a traceback nor a secret."""

from __future__ import annotations


class JobFailed(Exception):
    """The job cannot be done on this host; the message is what the platform is told."""
