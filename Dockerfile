# One image for every deskpool process; docker-compose.yml picks the command:
#   python -m api                       the HTTP API (the default below)
#   python -m worker                    a Temporal worker (run N replicas)
#   python -m activities.store.migrate  schema migrations, then exit
FROM python:3.11-slim

# uv: compile .pyc once at build time, copy out of the cache mount, and use the
# image's own Python 3.11 rather than downloading one.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# The same uv the lock file was written with.
RUN pip install --no-cache-dir uv==0.13.8

WORKDIR /app

# Dependencies first, from the lock alone: this layer is rebuilt only when
# pyproject.toml or uv.lock change, not on every source edit.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then the project itself (hatchling needs README.md for the metadata).
COPY README.md ./
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
COPY api ./api
COPY tools ./tools
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

# Run unprivileged. /app/data only matters for the SQLite default URL; the
# compose deployment uses PostgreSQL.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home deskpool \
    && mkdir -p /app/data \
    && chown deskpool:deskpool /app/data
USER deskpool

ENV PATH="/app/.venv/bin:${PATH}"

EXPOSE 8000
CMD ["python", "-m", "api"]
