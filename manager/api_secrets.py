"""Registry secrets: `/api/v1/secrets`, `/api/v1/secrets/{name}`. A secret's password goes in at create and never
comes out of the API: it is sealed in the database (manager/secret_box.py) and handed only to the hosts of the
tasks that name the secret, in their jobs."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from starlette.responses import JSONResponse, Response

from .api_errors import conflict, invalid, not_found
from .api_session import iso
from .clusters import NAME
from .context import Context
from .models import RegistrySecret, Task
from .pagination import page_of
from .task_runner import ACTIVE_TASK_STATES


def secret_json(secret: RegistrySecret) -> dict[str, Any]:
    return {"id": secret.id, "name": secret.name, "username": secret.username, "created_by": secret.created_by,
            "created": iso(secret.created_at)}


async def list_secrets(ctx: Context) -> Response:
    page = page_of(ctx.request)
    async with ctx.read() as session:
        rows = list((await session.execute(page.of(select(RegistrySecret), RegistrySecret.id))).scalars())
    return JSONResponse(page.answer([secret_json(s) for s in rows], [s.id for s in rows]))


async def create_secret(ctx: Context) -> Response:
    body = await ctx.body("name", "username", "password")
    name = body.text("name", max_length=64)
    ctx.target = f"secret:{name}"
    if not NAME.match(name):
        raise invalid("name: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, up to 63")
    username = body.text("username", max_length=255)
    password = body.text("password", max_length=4096)
    if not password:
        raise invalid("password is empty")
    sealed = ctx.platform.box.seal(password)
    try:
        async with ctx.write(ctx.target) as session:
            secret = RegistrySecret(name=name, username=username, password_encrypted=sealed,
                                    created_by=ctx.me().name, created_at=time.time())
            session.add(secret)
            await session.flush()
    except IntegrityError:
        raise conflict(f"secret {name!r} exists") from None
    return JSONResponse(secret_json(secret), 201)


async def delete_secret(ctx: Context) -> Response:
    name = str(ctx.request.path_params["name"])
    ctx.target = f"secret:{name[:64]}"
    async with ctx.write(ctx.target) as session:
        secret = (await session.execute(select(RegistrySecret).where(RegistrySecret.name == name))).scalar()
        if secret is None:
            raise not_found(f"no secret {name[:64]!r}")
        using = (await session.execute(select(func.count()).select_from(Task).where(
            Task.secret_id == secret.id, Task.state.in_(ACTIVE_TASK_STATES)))).scalar_one()
        if using:
            raise conflict(f"secret {name!r} is used by {using} unfinished task(s): stop them first")
        await session.delete(secret)
    return Response(status_code=204)
