"""rewards, ledger, redemptions, webhook secrets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 23:36:28.730980
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ledger_entries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.String(length=36), nullable=False),
    sa.Column('member_id', sa.String(length=100), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_ledger_entries_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries')),
    sa.UniqueConstraint('merchant_id', 'key', name=op.f('uq_ledger_entries_merchant_id'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entries_member', ['merchant_id', 'member_id'], unique=False)

    op.create_table('redemptions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('merchant_id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('reward_id', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.String(length=100), nullable=False),
    sa.Column('target_pos', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.String(length=100), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=True),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('request_json', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_redemptions_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_redemptions')),
    sa.UniqueConstraint('merchant_id', 'key', name=op.f('uq_redemptions_merchant_id'))
    )
    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.create_index('ix_redemptions_unfinished', ['status', 'updated_at'], unique=False)

    op.create_table('rewards',
    sa.Column('merchant_id', sa.String(length=36), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('terms', sa.Text(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('points_required', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('variable_quantity', sa.Boolean(), nullable=False),
    sa.Column('action_label', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_rewards_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('merchant_id', 'id', name=op.f('pk_rewards'))
    )
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('loyalty_ratio', sa.BigInteger(), nullable=True))

    with op.batch_alter_table('pos_credentials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_secret', sa.LargeBinary(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('pos_credentials', schema=None) as batch_op:
        batch_op.drop_column('webhook_secret')

    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.drop_column('loyalty_ratio')

    op.drop_table('rewards')
    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.drop_index('ix_redemptions_unfinished')

    op.drop_table('redemptions')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_entries_member')

    op.drop_table('ledger_entries')
