"""The platform operators drive (issue #13): users, roles, API tokens, sessions, an audit log, a REST API."""
