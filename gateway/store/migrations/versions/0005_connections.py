"""connections: status of each POS connection, invites, OAuth states

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('invites',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('merchant_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_invites_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invites'))
    )
    op.create_table('oauth_states',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('invite_id', sa.String(length=64), nullable=False),
    sa.Column('pos', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['invite_id'], ['invites.id'], name=op.f('fk_oauth_states_invite_id_invites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth_states'))
    )
    with op.batch_alter_table('pos_credentials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=24), server_default='CONNECTED', nullable=False))
        batch_op.add_column(sa.Column('status_reason', sa.Text(), nullable=True))
        batch_op.alter_column('access_token', existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('pos_credentials', schema=None) as batch_op:
        batch_op.alter_column('access_token', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column('status_reason')
        batch_op.drop_column('status')

    op.drop_table('oauth_states')
    op.drop_table('invites')
