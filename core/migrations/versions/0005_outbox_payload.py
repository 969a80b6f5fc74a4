"""outbox payload

Outbox rows may hold what to send (`payload`, rendered by the worker) instead of the message, and
carry their Message-ID; registrations lose `mail_owed` and `reminder_sent_at`, which served the
background mailer this replaces (mail and reminders are queued with the change that causes them).
Two parents: this also merges the booking and outbox branches.

Revision ID: 0005_outbox_payload
Revises: 0002_booking, 0003_outbox
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0005_outbox_payload'
down_revision: str | Sequence[str] | None = ('0002_booking', '0003_outbox')
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    owed = op.get_bind().execute(
        sa.text("SELECT count(*) FROM registration WHERE mail_owed IS NOT NULL")
    ).scalar_one()
    if owed:
        # Dropping the column would drop the e-mails those registrations are still owed.
        raise RuntimeError(
            f"{owed} registrations still owe their confirmation or waitlist e-mail. Run the previous "
            "version (its background mailer writes them to the outbox within seconds) until "
            "`SELECT count(*) FROM registration WHERE mail_owed IS NOT NULL` is 0, then upgrade again."
        )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.alter_column('message', existing_type=sa.LargeBinary(), nullable=True)
        batch_op.create_check_constraint(
            op.f('ck_outbox_has_content'), 'message IS NOT NULL OR payload IS NOT NULL'
        )

    with op.batch_alter_table('registration', schema=None) as batch_op:
        batch_op.drop_index(
            'ix_registration_mail_owed',
            sqlite_where=sa.text('mail_owed IS NOT NULL'),
            postgresql_where=sa.text('mail_owed IS NOT NULL'),
        )
        batch_op.drop_column('mail_owed')
        batch_op.drop_column('reminder_sent_at')


def downgrade() -> None:
    with op.batch_alter_table('registration', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reminder_sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('mail_owed', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
        batch_op.create_index(
            'ix_registration_mail_owed',
            ['session_id'],
            unique=False,
            sqlite_where=sa.text('mail_owed IS NOT NULL'),
            postgresql_where=sa.text('mail_owed IS NOT NULL'),
        )

    unsent = op.get_bind().execute(
        sa.text(
            "SELECT count(*) FROM outbox WHERE message IS NULL "
            "AND status IN ('queued', 'retrying', 'sending')"
        )
    ).scalar_one()
    if unsent:
        # The older schema has no way to hold what to send: those e-mails would be lost.
        raise RuntimeError(f"{unsent} outbox rows are not rendered yet; let the worker send them first.")
    # What is left without a message was cancelled or failed before it was ever rendered.
    op.execute("DELETE FROM outbox WHERE message IS NULL")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_has_content'), type_='check')
        batch_op.alter_column('message', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column('message_id')
        batch_op.drop_column('payload')
