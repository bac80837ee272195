"""invalid task calls

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 16:17:26.296433
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('invalid_task_calls',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('task_name', sa.String(length=128), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('arguments', sa.Text(), nullable=False),
    sa.Column('at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invalid_task_calls'))
    )
    with op.batch_alter_table('invalid_task_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invalid_task_calls_task_name'), ['task_name'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('invalid_task_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invalid_task_calls_task_name'))

    op.drop_table('invalid_task_calls')

