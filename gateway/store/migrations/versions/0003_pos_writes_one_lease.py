"""the write journal (pos_writes); idempotency records leased through the locks table

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pos_writes',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('merchant_id', sa.String(length=36), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('intent_json', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('outcome_json', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_pos_writes_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pos_writes'))
    )
    with op.batch_alter_table('pos_writes', schema=None) as batch_op:
        batch_op.create_index('ix_pos_writes_owner', ['merchant_id', 'owner'], unique=False)
        batch_op.create_index('ix_pos_writes_status', ['status', 'sent_at'], unique=False)
        batch_op.create_index('uq_pos_writes_pending_target', ['target'], unique=True, sqlite_where=sa.text("status = 'PENDING'"), postgresql_where=sa.text("status = 'PENDING'"))

    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.drop_column('lease_owner')
        batch_op.drop_column('lease_expires_at')
        batch_op.create_index('ix_idempotency_records_unfinished', ['status', 'updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.drop_index('ix_idempotency_records_unfinished')
        batch_op.add_column(sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=64), nullable=True))

    with op.batch_alter_table('pos_writes', schema=None) as batch_op:
        batch_op.drop_index('uq_pos_writes_pending_target', sqlite_where=sa.text("status = 'PENDING'"), postgresql_where=sa.text("status = 'PENDING'"))
        batch_op.drop_index('ix_pos_writes_status')
        batch_op.drop_index('ix_pos_writes_owner')

    op.drop_table('pos_writes')
