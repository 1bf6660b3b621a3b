"""Per-org anti-abuse settings (spec §13.1). Defaults start from Discourse's."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Seconds = Annotated[int, msgspec.Meta(ge=0, le=86_400)]


class PostingLimits(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    enabled: bool = True
    reply_interval_s: Seconds = 5  # Discourse: rate_limit_create_post
    thread_interval_s: Seconds = 15  # Discourse: rate_limit_create_topic
    new_account_age_s: Seconds = 86_400  # accounts younger than this are "new"
    new_reply_interval_s: Seconds = 30  # Discourse: rate_limit_new_user_create_post
    new_thread_interval_s: Seconds = 60
    new_account_max_links: Annotated[int, msgspec.Meta(ge=0, le=100)] = 3
    ip_posts_per_minute: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 30
    duplicate_window_s: Seconds = 300
    max_body_chars: Annotated[int, msgspec.Meta(ge=100, le=50_000)] = 32_000


class SpamScreening(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    """New posts scoring above `threshold` get a system spam flag (backend.moderation); never hidden."""

    enabled: bool = True
    threshold: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.8


class ImageSettings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    """Remote images in posts: `proxy` serves them through the forum's image proxy, `link` shows a plain
    link instead. Either way a reader's IP address never reaches the image's host. Applies to posts
    written or edited after a change."""

    remote: Literal["proxy", "link"] = "proxy"


class ForumSettings(msgspec.Struct, forbid_unknown_fields=True):
    posting: PostingLimits = msgspec.field(default_factory=PostingLimits)
    spam: SpamScreening = msgspec.field(default_factory=SpamScreening)
    images: ImageSettings = msgspec.field(default_factory=ImageSettings)
