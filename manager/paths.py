"""Where the platform's API lives. Its own module so that the CLI's client can name it without importing the
route table, which imports every handler and with them SQLAlchemy."""

from __future__ import annotations

PREFIX = "/api/v1"
