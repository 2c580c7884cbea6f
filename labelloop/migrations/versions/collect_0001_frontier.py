"""Collect: the crawl frontier and the pHashes of crawled images.

Revision ID: collect_0001
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "collect_0001"
down_revision = "0001"
branch_labels = ("collect",)
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    # Databases crawled before these tables came only from this revision may hold them already (made by create_all).
    if "crawl_frontier" not in existing:
        op.create_table(
            "crawl_frontier",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("crawl", sa.String(200), nullable=False),
            sa.Column("url", sa.String(2048), nullable=False),
            sa.Column("kind", sa.String(8), nullable=False),
            sa.Column("depth", sa.Integer, nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("status", sa.Integer),
            sa.Column("reason", sa.String(64)),
            sa.Column("error", sa.Text),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("etag", sa.String(512)),
            sa.Column("last_modified", sa.String(64)),
            sa.Column("referer", sa.String(2048)),
            sa.Column("meta", sa.Text),
            sa.Column("run_id", sa.String(64)),
            sa.Column("updated_at", sa.Float),
            sa.UniqueConstraint("crawl", "url", name="uq_crawl_frontier_crawl_url"),
        )
    if "crawl_image_hashes" not in existing:
        op.create_table(
            "crawl_image_hashes",
            sa.Column("sha256", sa.String(64), primary_key=True),
            sa.Column("phash", sa.String(16), nullable=False),
        )


def downgrade() -> None:
    op.drop_table("crawl_image_hashes")
    op.drop_table("crawl_frontier")
