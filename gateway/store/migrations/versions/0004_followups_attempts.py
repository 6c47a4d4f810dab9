"""follow-ups of landed writes (rule 5 when the till closes a sale); compensation attempts

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pos_writes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('follow_up', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('follow_up_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_pos_writes_follow_up', ['follow_up', 'follow_up_at'], unique=False)

    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.drop_column('attempts')

    with op.batch_alter_table('pos_writes', schema=None) as batch_op:
        batch_op.drop_index('ix_pos_writes_follow_up')
        batch_op.drop_column('follow_up_at')
        batch_op.drop_column('follow_up')
