"""Global identity tables (schema public). DDL lives in backend/migrations/public."""

from piccolo.columns import UUID, Array, Boolean, Bytea, Text, Timestamptz
from piccolo.table import Table

from engine.db import DB


class User(Table, tablename="users", db=DB):
    id = UUID(primary_key=True)
    username = Text()
    email = Text()
    password_hash = Text(secret=True)
    is_agent = Boolean(default=False)
    created_at = Timestamptz()


class ApiToken(Table, tablename="api_tokens", db=DB):
    id = UUID(primary_key=True)
    org_id = UUID()
    name = Text()
    token_hash = Bytea(secret=True)
    scopes = Array(base_column=Text())
    created_by = UUID()
    created_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)
