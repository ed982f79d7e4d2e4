"""Schema migrations, the embedded server's persistence, and the command line."""

import asyncio
import json
import os
import shutil
import subprocess
import sys

import asyncpg
import pytest

from harness.databases import with_database
from server.book.database import (
    create_pool,
    migrate,
    migration_files,
    open_database,
    start_embedded,
)
from server.settings import PROJECT_ROOT


@pytest.fixture
async def fresh_dsn(admin_dsn):
    """An empty database of its own, for tests that watch migrations happen."""
    name = f"migrate_test_{os.getpid()}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_migrations_apply_once_and_are_recorded(fresh_dsn, settings):
    pool = await create_pool(fresh_dsn, settings)
    try:
        versions = [version for version, _ in migration_files()]
        assert await migrate(pool) == versions
        assert await migrate(pool) == []  # second run: nothing to do, no error
        recorded = await pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in recorded] == versions
    finally:
        await pool.close()


async def test_processes_migrating_at_once_take_turns(fresh_dsn, settings):
    pools = [await create_pool(fresh_dsn, settings) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(p) for p in pools))
        assert sorted(len(a) for a in applied) == [0, 0, 0, len(migration_files())]
    finally:
        for p in pools:
            await p.close()


async def test_embedded_database_keeps_bookings_across_restarts(settings):
    pgdata = PROJECT_ROOT / ".data" / f"test-restart-{os.getpid()}"
    shutil.rmtree(pgdata, ignore_errors=True)
    embedded_settings = settings.model_copy(update={"database_url": None, "data_dir": pgdata})
    try:
        first = await open_database(embedded_settings)
        assert first.embedded is not None
        await first.pool.execute(
            "INSERT INTO reservations (phone_number, name, reservation_date, reservation_time,"
            " party_size, confirmation_number) VALUES ('+6598207272', 'Ada', '2030-01-01',"
            " '19:00', 2, 'ABCDEF')"
        )
        await first.close()
        assert not (pgdata / "pg" / "postmaster.pid").exists()  # really stopped

        second = await open_database(embedded_settings)
        try:
            name = await second.pool.fetchval(
                "SELECT name FROM reservations WHERE phone_number = '+6598207272'"
            )
            assert name == "Ada"
        finally:
            await second.close()
    finally:
        shutil.rmtree(pgdata, ignore_errors=True)


async def test_dead_handle_pids_do_not_keep_the_server_running(settings):
    pgdata = PROJECT_ROOT / ".data" / f"test-handles-{os.getpid()}"
    shutil.rmtree(pgdata, ignore_errors=True)
    try:
        server = await asyncio.to_thread(start_embedded, pgdata)
        await asyncio.to_thread(server.stop)
        # A process killed with SIGKILL leaves its PID behind; 2**22 + 1 is beyond pid_max.
        (pgdata / ".handle_pids.json").write_text("[4194305]")
        server = await asyncio.to_thread(start_embedded, pgdata)
        await asyncio.to_thread(server.stop)
        assert not (pgdata / "postmaster.pid").exists()
    finally:
        shutil.rmtree(pgdata, ignore_errors=True)


def run_cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        env={**os.environ, **env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_migrate_and_seed(test_dsn):
    assert run_cli("migrate", env={"DATABASE_URL": test_dsn}).returncode == 0
    seeded = run_cli("seed", env={"DATABASE_URL": test_dsn})
    assert seeded.returncode == 0, seeded.stderr
    assert seeded.stdout.count("#") == 3


def test_cli_fails_fast_with_one_clear_line_when_database_is_unreachable():
    result = run_cli(
        "migrate",
        env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:9/none", "DB_STARTUP_WAIT_S": "0.2"},
    )
    assert result.returncode == 2
    lines = [json.loads(line) for line in result.stderr.splitlines()]  # JSON lines, every one
    errors = [line for line in lines if line["level"] == "error"]
    assert len(errors) == 1
    assert "cannot reach PostgreSQL at postgresql://postgres@127.0.0.1:9/none" in errors[0]["msg"]
    assert "Traceback" not in result.stderr
