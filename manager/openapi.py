"""The OpenAPI 3.1 document, made from the route table (manager/routes.py): a route there is a route here."""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import JSONResponse, Response

from .context import Context

ERROR = {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}
_PARAM = re.compile(r"{([a-z_]+)}")


def document(routes: tuple[Any, ...]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "operationId": route.name,
            "summary": route.summary,
            "responses": {
                str(route.status): {"description": "done"},
                "default": {"description": "an error",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        }
        params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                  for p in _PARAM.findall(route.path)]
        if route.paginated:
            params += [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            ]
        params += [{"name": name, "in": "query", "schema": schema} for name, schema in route.query.items()]
        if params:
            operation["parameters"] = params
        if route.body:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object", "properties": route.body,
                                                            "additionalProperties": False}}},
            }
        if route.authenticated:
            operation["security"] = [{"bearer": []}]
        if route.permission:
            operation["x-permission"] = route.permission.value
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Damselfly platform API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def openapi(ctx: Context) -> Response:
    return JSONResponse(document(ctx.platform.routes))
