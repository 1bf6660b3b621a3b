"""Global org tables (schema public). DDL lives in backend/migrations/public.

`memberships` has a composite key, which Piccolo tables cannot express: the service queries it in SQL.
"""

from piccolo.columns import UUID, Text, Timestamptz
from piccolo.table import Table

from engine.db import DB


class Org(Table, tablename="orgs", db=DB):
    id = UUID(primary_key=True)
    slug = Text()
    name = Text()
    visibility = Text()
    created_by = UUID(null=True)
    created_at = Timestamptz()
