"""Users, for admins: `/api/v1/users` and `/api/v1/users/{name}`."""

from __future__ import annotations

import re
import time
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import JSONResponse, Response

from .api_errors import conflict, invalid, not_found
from .api_session import iso
from .context import Context
from .models import Cluster, LoginSession, User
from .pagination import page_of
from .passwords import WeakPassword, check_strength, hash_password
from .permissions import Role
from .request_body import JsonObject
from .scopes import MAX_CLUSTERS

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def user_json(user: User) -> dict[str, Any]:
    return {"name": user.name, "role": user.role, "clusters": list(user.clusters or []), "disabled": user.disabled,
            "created": iso(user.created_at)}


def _role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise invalid(f"role must be one of {', '.join(r.value for r in Role)}") from None


def _password(text: str) -> str:
    try:
        check_strength(text)
    except WeakPassword as exc:
        raise invalid(str(exc)) from None
    return text


def _name(ctx: Context) -> str:
    name = str(ctx.request.path_params["name"])
    ctx.target = name[:64]
    return name


async def _user(session: AsyncSession, name: str) -> User:
    user = (await session.execute(select(User).where(User.name == name))).scalar()
    if user is None:
        raise not_found(f"no user {name[:64]!r}")
    return user


async def _clusters(session: AsyncSession, body: JsonObject) -> list[str] | None:
    """The clusters the body scopes the role to (each must exist), or None when it names none."""
    names = body.texts("clusters", max_items=MAX_CLUSTERS)
    if names is None:
        return None
    names = list(dict.fromkeys(names))
    known = set((await session.execute(select(Cluster.name).where(Cluster.name.in_(names)))).scalars())
    missing = [name for name in names if name not in known]
    if missing:
        raise invalid(f"clusters: no cluster {missing[0][:64]!r}")
    return names


def _scope_fits(role: str, clusters: list[str]) -> None:
    if clusters and role == Role.ADMIN.value:
        raise invalid("an admin holds everywhere: scope an operator or a viewer to clusters, not an admin")


async def _other_admins(session: AsyncSession, user: User) -> int:
    query = select(func.count()).select_from(User).where(
        User.role == Role.ADMIN.value, User.id != user.id, User.disabled.is_(False)
    )
    return int((await session.execute(query)).scalar_one())


async def list_users(ctx: Context) -> Response:
    page = page_of(ctx.request)
    async with ctx.read() as session:
        users = list((await session.execute(page.of(select(User), User.id))).scalars())
    return JSONResponse(page.answer([user_json(u) for u in users], [u.id for u in users]))


async def create_user(ctx: Context) -> Response:
    body = await ctx.body("name", "role", "password", "clusters")
    name = body.text("name", max_length=64)
    ctx.target = name
    if not NAME.match(name):
        raise invalid("name: letters, digits, '.', '_' and '-', starting with a letter or digit, up to 64")
    role = _role(body.text("role"))
    # Hashed before the transaction opens: it takes a while, and holds no lock meanwhile.
    password_hash = await hash_password(_password(body.text("password")))
    async with ctx.read() as session:
        clusters = await _clusters(session, body) or []
    _scope_fits(role.value, clusters)
    where = f" in clusters {', '.join(clusters)}" if clusters else ""
    try:
        async with ctx.write(name, f"role {role.value}{where}") as session:
            user = User(name=name, role=role.value, password_hash=password_hash, created_at=time.time(),
                        disabled=False, clusters=clusters)
            session.add(user)
            await session.flush()
    except IntegrityError:
        raise conflict(f"user {name!r} exists") from None
    return JSONResponse(user_json(user), 201)


async def show_user(ctx: Context) -> Response:
    name = _name(ctx)
    async with ctx.read() as session:
        return JSONResponse(user_json(await _user(session, name)))


async def patch_user(ctx: Context) -> Response:
    name = _name(ctx)
    body = await ctx.body("role", "password", "disabled", "clusters")
    role = _role(body.text("role")) if "role" in body else None
    password_hash = await hash_password(_password(body.text("password"))) if "password" in body else None
    disabled = body.flag("disabled") if "disabled" in body else None
    changes = ", ".join(what for what, value in (("role", role), ("password", password_hash), ("disabled", disabled),
                                                 ("clusters", body.data.get("clusters")))
                        if value is not None)
    async with ctx.write(name, f"changed {changes or 'nothing'}") as session:
        user = await _user(session, name)
        losing_admin = (role is not None and role != Role.ADMIN) or disabled
        if user.role == Role.ADMIN.value and losing_admin and not await _other_admins(session, user):
            raise conflict("the last admin keeps the admin role")
        if role is not None:
            user.role = role.value
        clusters = await _clusters(session, body)
        if clusters is not None:
            user.clusters = clusters
        _scope_fits(user.role, list(user.clusters or []))
        if disabled is not None:
            user.disabled = disabled
        if password_hash is not None:
            user.password_hash = password_hash
            await session.execute(update(LoginSession).where(LoginSession.user_id == user.id).values(revoked=True))
    return JSONResponse(user_json(user))


async def delete_user(ctx: Context) -> Response:
    name = _name(ctx)
    async with ctx.write(name) as session:
        user = await _user(session, name)
        if user.role == Role.ADMIN.value and not await _other_admins(session, user):
            raise conflict("the last admin cannot be deleted")
        await session.delete(user)
    return Response(status_code=204)
