"""Tables of the dataset store (SQLAlchemy Core), the crawl frontier's included.

The schema itself is created and changed only by the Alembic migrations in
``labelloop/migrations`` (:func:`labelloop.store.migrate`); these Table objects
describe it for queries.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("dataset", String(128), nullable=True),
    Column("status", String(16), nullable=False),
    Column("params", JSON, nullable=True),
    Column("summary", JSON, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

provenance = Table(
    "provenance",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # import | scrape
    Column("name", String(256), nullable=False),
    Column("uri", Text, nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("details", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

items = Table(
    "items",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("dataset", String(128), nullable=False),
    Column("external_id", String(512), nullable=True),
    Column("modality", String(16), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("uri", Text, nullable=True),
    Column("path", Text, nullable=True),
    Column("text", Text, nullable=True),
    Column("payload", LargeBinary, nullable=True),
    Column("meta", JSON, nullable=True),
    Column("split", String(16), nullable=True),
    Column("provenance_id", BigId, ForeignKey("provenance.id"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("dataset", "content_hash"),
)

labels = Table(
    "labels",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("item_id", BigId, ForeignKey("items.id"), nullable=False),
    # -1 is a retraction: the source withdraws its earlier opinion on the item.
    Column("label", SmallInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("source", String(256), nullable=False),
    Column("confidence", Float, nullable=True),
    Column("probs", LargeBinary, nullable=True),  # float32 class probabilities
    Column("run_id", String(64), nullable=True),
    Column("dedupe_key", String(512), nullable=True, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_labels_item_kind_source_id", "item_id", "kind", "source", "id", "label"),
)

annotation_tasks = Table(
    "annotation_tasks",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("item_id", BigId, ForeignKey("items.id"), nullable=False),
    Column("queue", String(16), nullable=False),  # expert | crowd | review
    Column("project", String(256), nullable=True),  # Label Studio project id or title
    Column("annotator", String(256), nullable=True),
    Column("external_id", String(128), nullable=True),  # Label Studio task id
    Column("state", String(16), nullable=False),  # queued | pushed | done | skipped | cancelled
    Column("is_gold", Integer, nullable=False, default=0),
    Column("priority", Float, nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("details", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_annotation_tasks_item_queue", "item_id", "queue"),
    Index("ix_annotation_tasks_queue_state", "queue", "state"),
)

# The crawl frontier (labelloop.scrape.frontier): one row per URL per crawl, never queued twice.
crawl_frontier = Table(
    "crawl_frontier",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("crawl", String(200), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("kind", String(8), nullable=False),  # page | image
    Column("depth", Integer, nullable=False, default=0),
    Column("state", String(16), nullable=False, default="pending"),  # pending | done | failed | skipped
    Column("status", Integer),
    Column("reason", String(64)),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("etag", String(512)),
    Column("last_modified", String(64)),
    Column("referer", String(2048)),
    Column("meta", Text),
    Column("run_id", String(64)),
    Column("updated_at", Float),
    UniqueConstraint("crawl", "url", name="uq_crawl_frontier_crawl_url"),
)

# pHashes of stored images, so near-duplicate flags survive a restart.
crawl_image_hashes = Table(
    "crawl_image_hashes",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("phash", String(16), nullable=False),
)
