"""Foundation: runs, provenance, items, labels, annotation tasks.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("dataset", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON),
        sa.Column("summary", sa.JSON),
        sa.Column("started_at", Stamp, nullable=False),
        sa.Column("finished_at", Stamp),
    )
    op.create_table(
        "provenance",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("uri", sa.Text),
        sa.Column("run_id", sa.String(64)),
        sa.Column("details", sa.JSON),
        sa.Column("created_at", Stamp, nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("dataset", sa.String(128), nullable=False),
        sa.Column("external_id", sa.String(512)),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("uri", sa.Text),
        sa.Column("path", sa.Text),
        sa.Column("text", sa.Text),
        sa.Column("payload", sa.LargeBinary),
        sa.Column("meta", sa.JSON),
        sa.Column("split", sa.String(16)),
        sa.Column("provenance_id", BigId, sa.ForeignKey("provenance.id", name="fk_items_provenance_id_provenance")),
        sa.Column("created_at", Stamp, nullable=False),
        sa.UniqueConstraint("dataset", "content_hash", name="uq_items_dataset_content_hash"),
    )
    op.create_table(
        "labels",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("item_id", BigId, sa.ForeignKey("items.id", name="fk_labels_item_id_items"), nullable=False),
        sa.Column("label", sa.SmallInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("confidence", sa.Float),
        sa.Column("probs", sa.LargeBinary),
        sa.Column("run_id", sa.String(64)),
        sa.Column("dedupe_key", sa.String(512)),
        sa.Column("created_at", Stamp, nullable=False),
        sa.UniqueConstraint("dedupe_key", name="uq_labels_dedupe_key"),
    )
    # Covering index for resolution: the grouped scan never touches the table.
    op.create_index("ix_labels_item_kind_source_id", "labels", ["item_id", "kind", "source", "id", "label"])
    op.create_table(
        "annotation_tasks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("item_id", BigId, sa.ForeignKey("items.id", name="fk_annotation_tasks_item_id_items"), nullable=False),
        sa.Column("queue", sa.String(16), nullable=False),
        sa.Column("project", sa.String(256)),
        sa.Column("annotator", sa.String(256)),
        sa.Column("external_id", sa.String(128)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("is_gold", sa.Integer, nullable=False, server_default="0"),
        sa.Column("priority", sa.Float),
        sa.Column("run_id", sa.String(64)),
        sa.Column("details", sa.JSON),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
    )
    op.create_index("ix_annotation_tasks_item_queue", "annotation_tasks", ["item_id", "queue"])
    op.create_index("ix_annotation_tasks_queue_state", "annotation_tasks", ["queue", "state"])
    # Labels are append-only: the database itself refuses UPDATE and DELETE.
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER labels_no_{action.lower()} BEFORE {action} ON labels "
                "BEGIN SELECT RAISE(ABORT, 'labels are append-only'); END"
            )
    elif bind.dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION labelloop_labels_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'labels are append-only'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER labels_append_only BEFORE UPDATE OR DELETE ON labels "
            "FOR EACH ROW EXECUTE FUNCTION labelloop_labels_append_only()"
        )


def downgrade() -> None:
    for table in ("annotation_tasks", "labels", "items", "provenance", "runs"):
        op.drop_table(table)
