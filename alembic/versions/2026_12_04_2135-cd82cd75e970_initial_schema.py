"""initial schema

Revision ID: cd82cd75e970
Revises: 
Create Date: 2026-12-04 21:35:42.739548+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa


from alembic import op


revision: str = 'cd82cd75e970'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('org_name', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_org_name'), ['org_name'], unique=False)

    op.create_table('organizations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organizations')),
    sa.UniqueConstraint('name', name=op.f('uq_organizations_name'))
    )
    op.create_table('org_admins',
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_org_admins_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('org_id', 'username', name=op.f('pk_org_admins'))
    )
    op.create_table('robot_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('shortname', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('token_encrypted', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_robot_accounts_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_robot_accounts')),
    sa.UniqueConstraint('org_id', 'shortname', name=op.f('uq_robot_accounts_org_id'))
    )
    with op.batch_alter_table('robot_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_robot_accounts_org_id'), ['org_id'], unique=False)

    op.create_table('org_mirror_configs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('robot_id', sa.Integer(), nullable=False),
    sa.Column('is_enabled', sa.Boolean(), nullable=False),
    sa.Column('external_registry_type', sa.String(length=16), nullable=False),
    sa.Column('external_registry_url', sa.String(length=2048), nullable=False),
    sa.Column('external_namespace', sa.String(length=255), nullable=False),
    sa.Column('external_registry_username', sa.String(length=255), nullable=True),
    sa.Column('external_registry_password_encrypted', sa.Text(), nullable=True),
    sa.Column('verify_tls', sa.Boolean(), nullable=False),
    sa.Column('proxy_encrypted', sa.Text(), nullable=True),
    sa.Column('repository_filters', sa.JSON(), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('sync_interval', sa.Integer(), nullable=False),
    sa.Column('schedule_anchor', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sync_start_date', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sync_expiration_date', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sync_status', sa.String(length=16), nullable=False),
    sa.Column('sync_retries_remaining', sa.Integer(), nullable=False),
    sa.Column('skopeo_timeout', sa.Integer(), nullable=False),
    sa.Column('creation_date', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=255), nullable=True),
    sa.Column('run_phase', sa.String(length=16), nullable=True),
    sa.Column('follow_up_requested', sa.Boolean(), nullable=False),
    sa.Column('run_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('run_count', sa.Integer(), nullable=False),
    sa.Column('last_sync', sa.JSON(), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_org_mirror_configs_org_id_organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['robot_id'], ['robot_accounts.id'], name=op.f('fk_org_mirror_configs_robot_id_robot_accounts'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_org_mirror_configs')),
    sa.UniqueConstraint('org_id', name=op.f('uq_org_mirror_configs_org_id'))
    )
    with op.batch_alter_table('org_mirror_configs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_org_mirror_configs_robot_id'), ['robot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_org_mirror_configs_sync_start_date'), ['sync_start_date'], unique=False)

    op.create_table('mirror_repositories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('config_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('sync_status', sa.String(length=16), nullable=False),
    sa.Column('discovery_date', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_sync_date', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('lease_owner', sa.String(length=255), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('in_target', sa.Boolean(), nullable=False),
    sa.Column('tags_total', sa.Integer(), nullable=False),
    sa.Column('tags_copied', sa.Integer(), nullable=False),
    sa.Column('tags_skipped', sa.Integer(), nullable=False),
    sa.Column('tags_failed', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['config_id'], ['org_mirror_configs.id'], name=op.f('fk_mirror_repositories_config_id_org_mirror_configs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mirror_repositories')),
    sa.UniqueConstraint('config_id', 'name', name=op.f('uq_mirror_repositories_config_id'))
    )
    with op.batch_alter_table('mirror_repositories', schema=None) as batch_op:
        batch_op.create_index('ix_mirror_repositories_config_status', ['config_id', 'sync_status'], unique=False)
        batch_op.create_index(batch_op.f('ix_mirror_repositories_lease_expires_at'), ['lease_expires_at'], unique=False)

    op.create_table('mirrored_tags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=128), nullable=False),
    sa.Column('digest', sa.String(length=100), nullable=False),
    sa.Column('mirrored_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['mirror_repositories.id'], name=op.f('fk_mirrored_tags_repository_id_mirror_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mirrored_tags')),
    sa.UniqueConstraint('repository_id', 'tag', name=op.f('uq_mirrored_tags_repository_id'))
    )



def downgrade() -> None:

    op.drop_table('mirrored_tags')
    with op.batch_alter_table('mirror_repositories', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mirror_repositories_lease_expires_at'))
        batch_op.drop_index('ix_mirror_repositories_config_status')

    op.drop_table('mirror_repositories')
    with op.batch_alter_table('org_mirror_configs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_org_mirror_configs_sync_start_date'))
        batch_op.drop_index(batch_op.f('ix_org_mirror_configs_robot_id'))

    op.drop_table('org_mirror_configs')
    with op.batch_alter_table('robot_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_robot_accounts_org_id'))

    op.drop_table('robot_accounts')
    op.drop_table('org_admins')
    op.drop_table('organizations')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_org_name'))
        batch_op.drop_index(batch_op.f('ix_audit_events_created_at'))

    op.drop_table('audit_events')

