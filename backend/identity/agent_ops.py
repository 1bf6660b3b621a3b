"""What the identity domain offers agents: who a user is (name and join date, nothing private)."""

from __future__ import annotations

import uuid

from agent_packages.forum_contract.reads import UserInfo, UserQuery
from engine import db
from engine.agents.registry import AgentRuntime


async def user(q: UserQuery) -> UserInfo:
    row = await db.fetchrow("SELECT id, username, created_at FROM users WHERE id = $1", uuid.UUID(q.user_id))
    if row is None:
        raise LookupError("user not found")
    return UserInfo(id=str(row["id"]), username=row["username"], created_at=row["created_at"].isoformat())


def register(runtime: AgentRuntime) -> None:
    runtime.add_read(UserQuery, user)
