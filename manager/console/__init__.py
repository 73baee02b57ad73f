"""The web console (issue #14): server-rendered pages over the platform's own route handlers, called in-process, so
that every check, answer and audit entry is the API's (manager/dispatch.py)."""
