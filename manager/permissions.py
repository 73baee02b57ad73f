"""Roles and what each may do: the one table every endpoint's check reads (manager/routes.py names the permission)."""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    # One's own API tokens; an admin's users:write reaches everyone's.
    TOKENS_READ = "tokens:read"
    TOKENS_WRITE = "tokens:write"
    # One's own password.
    ACCOUNT_WRITE = "account:write"
    AUDIT_READ = "audit:read"
    # Targets, distribution tasks, analysis (issue #13).
    TARGETS_READ = "targets:read"
    TARGETS_WRITE = "targets:write"
    TASKS_READ = "tasks:read"
    TASKS_WRITE = "tasks:write"
    # Registry credentials that tasks name: their names and usernames; create and delete them (never read back).
    SECRETS_READ = "secrets:read"
    SECRETS_WRITE = "secrets:write"
    ANALYSIS_READ = "analysis:read"


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


_SELF = {Permission.TOKENS_READ, Permission.TOKENS_WRITE, Permission.ACCOUNT_WRITE}
_READ = {Permission.TARGETS_READ, Permission.TASKS_READ, Permission.ANALYSIS_READ, Permission.SECRETS_READ}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset(
        _SELF | _READ | {Permission.TARGETS_WRITE, Permission.TASKS_WRITE, Permission.SECRETS_WRITE}
    ),
    Role.VIEWER: frozenset(_SELF | _READ),
}


def permissions_of(role: str) -> frozenset[Permission]:
    try:
        return ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return frozenset()


def parse_scopes(values: list[str]) -> frozenset[Permission]:
    """Scope names as permissions; ValueError names the first unknown one."""
    found = set()
    for value in values:
        try:
            found.add(Permission(value))
        except ValueError:
            known = ", ".join(p.value for p in Permission)
            raise ValueError(f"unknown scope {value[:64]!r} (known: {known})") from None
    return frozenset(found)
