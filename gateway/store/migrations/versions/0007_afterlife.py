"""the life of a sale: take-backs, reconciliation checkpoints, the void policy

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('redeemed_points_on_void', sa.String(length=16), nullable=False, server_default='RETURN'))

    op.create_table('take_backs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('merchant_id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('member_id', sa.String(length=100), nullable=False),
    sa.Column('pos', sa.String(length=16), nullable=False),
    sa.Column('sale_id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('wanted', sa.BigInteger(), nullable=False),
    sa.Column('taken', sa.BigInteger(), nullable=False),
    sa.Column('shortfall', sa.BigInteger(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_take_backs_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_take_backs')),
    sa.UniqueConstraint('merchant_id', 'key', name=op.f('uq_take_backs_merchant_id'))
    )
    with op.batch_alter_table('take_backs', schema=None) as batch_op:
        batch_op.create_index('ix_take_backs_sale', ['merchant_id', 'pos', 'sale_id'], unique=False)
        batch_op.create_index('ix_take_backs_pending', ['status', 'updated_at'], unique=False)

    op.create_table('sync_checkpoints',
    sa.Column('merchant_id', sa.String(length=36), nullable=False),
    sa.Column('pos', sa.String(length=16), nullable=False),
    sa.Column('position', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_sync_checkpoints_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('merchant_id', 'pos', name=op.f('pk_sync_checkpoints'))
    )


def downgrade() -> None:
    op.drop_table('sync_checkpoints')
    with op.batch_alter_table('take_backs', schema=None) as batch_op:
        batch_op.drop_index('ix_take_backs_pending')
        batch_op.drop_index('ix_take_backs_sale')
    op.drop_table('take_backs')
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.drop_column('redeemed_points_on_void')
