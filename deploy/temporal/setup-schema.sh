#!/bin/sh
# One-shot job (compose service `temporal-schema`, image temporalio/admin-tools).
#
# Creates Temporal's two databases on the shared PostgreSQL and brings their
# schema to the version shipped with this admin-tools image, which must match the
# temporalio/server tag. Every step is idempotent (an existing database is kept,
# setup-schema skips a schema that is already past 0.0, update-schema applies only
# newer versions), so it runs on every `docker compose up` and is also how a
# Temporal upgrade migrates: bump TEMPORAL_VERSION, `docker compose up -d`.
#
# Connection comes from temporal-sql-tool's own environment variables:
# SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD.
set -eu

: "${SQL_PLUGIN:?}" "${SQL_HOST:?}" "${SQL_USER:?}" "${SQL_PASSWORD:?}"
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12

setup_database() {  # database name, schema folder under $SCHEMA_ROOT
    echo "temporal-schema: database $1"
    temporal-sql-tool --db "$1" create-database
    temporal-sql-tool --db "$1" setup-schema -v 0.0
    temporal-sql-tool --db "$1" update-schema -d "$SCHEMA_ROOT/$2/versioned"
}

# Names the temporalio/server image uses by default (DBNAME, VISIBILITY_DBNAME).
setup_database temporal temporal
setup_database temporal_visibility visibility
echo "temporal-schema: done"
