"""the recovery worker's last pass, for `gateway doctor`

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('worker_passes',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('interval_s', sa.Float(), nullable=True),
    sa.Column('reconciled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_worker_passes'))
    )


def downgrade() -> None:
    op.drop_table('worker_passes')
