"""pool samples: a pool's counts over time for the portal's charts (pool_sample)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 11:40:00.000000
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pool_sample',
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('pool_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('ready', sa.Integer(), nullable=False),
    sa.Column('assigned', sa.Integer(), nullable=False),
    sa.Column('waiting', sa.Integer(), nullable=False),
    sa.Column('provisioning', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('pool_id', 'at')
    )


def downgrade() -> None:
    op.drop_table('pool_sample')
