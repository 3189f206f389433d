"""HTTP models of /api/keys (SPEC §2)."""
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from .models import Strict

Scope = Literal["read", "write", "admin"]
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Tenant = Annotated[str, StringConstraints(pattern=TENANT_PATTERN)]


class KeyCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    tenant: Tenant | None = Field(default=None, description="Only an admin key of tenant 'default' may name "
                                                            "another tenant; default: the caller's own.")


class ApiKey(BaseModel):
    id: str
    name: str
    tenant: str
    scopes: list[Scope]
    created_at: str
    revoked: bool


class ApiKeyCreated(ApiKey):
    secret: str | None = Field(description="The bearer secret, shown once. null when this answer repeats an "
                                           "earlier request with the same Idempotency-Key.")


class ApiKeyList(BaseModel):
    keys: list[ApiKey]
    total: int
