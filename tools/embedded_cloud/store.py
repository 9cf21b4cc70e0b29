"""Write-through persistence of run-time records in one SQLite file.

The in-memory dicts are the source of truth while running; every mutation is
written to ``<data_dir>/embedded_cloud.sqlite3`` immediately (one row per
record, JSON document per row) so a restart, or a crash, loses nothing.
SQLite rather than one JSON file keeps each write O(1) with many servers.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from tools.embedded_cloud.records import (
    ProjectRecord,
    SecurityGroupRecord,
    ServerRecord,
)

DB_FILE_NAME = "embedded_cloud.sqlite3"
_TABLES = ("servers", "projects", "security_groups")
_RecordT = TypeVar("_RecordT", bound=BaseModel)


class CloudStore:
    def __init__(self, data_dir: Path | None) -> None:
        self.servers: dict[str, ServerRecord] = {}
        self.projects: dict[str, ProjectRecord] = {}
        self.security_groups: dict[str, SecurityGroupRecord] = {}
        # Handlers run on one event loop, but the lock keeps the store safe if
        # it is ever touched from another thread (e.g. a test harness).
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(data_dir / DB_FILE_NAME, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            for table in (*_TABLES, "meta"):
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
            self._db.commit()
            self._load()
        self.token_key = self._token_key()

    @property
    def persistent(self) -> bool:
        return self._db is not None

    def _load(self) -> None:
        self.servers = self._read("servers", ServerRecord)
        self.projects = self._read("projects", ProjectRecord)
        self.security_groups = self._read("security_groups", SecurityGroupRecord)

    def _read(self, table: str, model: type[_RecordT]) -> dict[str, _RecordT]:
        assert self._db is not None
        rows = self._db.execute(f"SELECT id, doc FROM {table}").fetchall()
        return {row[0]: model.model_validate_json(row[1]) for row in rows}

    def _token_key(self) -> bytes:
        """HMAC key for tokens, persisted so tokens survive a restart.

        openstacksdk keeps using its cached token after the cloud restarts;
        a new key would turn every request into a 401 + re-authentication.
        """
        if self._db is None:
            return secrets.token_bytes(32)
        row = self._db.execute("SELECT doc FROM meta WHERE id = 'token_key'").fetchone()
        if row:
            return bytes.fromhex(row[0])
        key = secrets.token_bytes(32)
        self._write("meta", "token_key", key.hex())
        return key

    def _write(self, table: str, key: str, doc: str | None) -> None:
        if self._db is None:
            return
        with self._lock:
            if doc is None:
                self._db.execute(f"DELETE FROM {table} WHERE id = ?", (key,))
            else:
                self._db.execute(
                    f"INSERT OR REPLACE INTO {table} (id, doc) VALUES (?, ?)",
                    (key, doc),
                )
            self._db.commit()

    def save_server(self, server: ServerRecord) -> None:
        with self._lock:
            self.servers[server.id] = server
            self._write("servers", server.id, server.model_dump_json())

    def remove_server(self, server_id: str) -> None:
        with self._lock:
            self.servers.pop(server_id, None)
            self._write("servers", server_id, None)

    def save_project(self, project: ProjectRecord) -> None:
        with self._lock:
            self.projects[project.id] = project
            self._write("projects", project.id, project.model_dump_json())

    def save_security_group(self, group: SecurityGroupRecord) -> None:
        with self._lock:
            self.security_groups[group.id] = group
            self._write("security_groups", group.id, group.model_dump_json())

    def remove_security_group(self, group_id: str) -> None:
        with self._lock:
            self.security_groups.pop(group_id, None)
            self._write("security_groups", group_id, None)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
