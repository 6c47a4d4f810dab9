"""loyalty activity: every movement of a balance, with its reason

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('loyalty_activity',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('merchant_id', sa.String(length=36), nullable=False),
    sa.Column('member_id', sa.String(length=100), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=True),
    sa.Column('pos', sa.String(length=16), nullable=True),
    sa.Column('sale_id', sa.String(length=100), nullable=True),
    sa.Column('reward_id', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_loyalty_activity_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_activity')),
    sa.UniqueConstraint('merchant_id', 'key', name=op.f('uq_loyalty_activity_merchant_id'))
    )
    with op.batch_alter_table('loyalty_activity', schema=None) as batch_op:
        batch_op.create_index('ix_loyalty_activity_member', ['merchant_id', 'member_id', 'occurred_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('loyalty_activity', schema=None) as batch_op:
        batch_op.drop_index('ix_loyalty_activity_member')
    op.drop_table('loyalty_activity')
