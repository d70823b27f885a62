"""`timebridge login-link`: a one-time link to sign a browser in, for a self-hoster."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from timebridge.cli import app as cli
from timebridge.config import Settings
from timebridge.store import open_store


def invoke(data_dir: Path, *args: str) -> tuple[int, str, str]:
    env = {
        "TIMEBRIDGE_DATA_DIR": str(data_dir),
        "TIMEBRIDGE_DATABASE_URL": None,
        "TIMEBRIDGE_SECRET_KEYS": None,
        "TIMEBRIDGE_PUBLIC_URL": "http://127.0.0.1:8123",
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(cli, ["login-link", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


async def accounts(data_dir: Path) -> list[int]:
    async with await open_store(Settings(data_dir=data_dir, database_url="")) as store:
        return await store.accounts.ids()


def test_with_no_account_it_makes_one_and_prints_a_link_to_it(tmp_path: Path) -> None:
    code, out, _ = invoke(tmp_path)
    assert code == 0, out
    assert out.startswith("http://127.0.0.1:8123/signin/link/")
    assert "Signs in to account 1 once" in out
    assert asyncio.run(accounts(tmp_path)) == [1]
    # The only account is chosen from then on; every link is new.
    code, again, _ = invoke(tmp_path)
    assert code == 0
    assert again.splitlines()[0] != out.splitlines()[0]
    assert asyncio.run(accounts(tmp_path)) == [1]


@pytest.mark.parametrize(("args", "code", "message"), [(["--account", "7"], 5, "no account 7")])
def test_an_unknown_account_is_named(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = invoke(tmp_path, *args)
    assert result[0] == code
    assert message in result[2]


def test_with_several_accounts_it_asks_which(tmp_path: Path) -> None:
    async def two() -> None:
        async with await open_store(Settings(data_dir=tmp_path, database_url="")) as store:
            await store.accounts.create("a@example.com")
            await store.accounts.create("b@example.com")

    asyncio.run(two())
    code, _, err = invoke(tmp_path)
    assert code == 2
    assert "there are 2 accounts (1, 2); choose one with --account ID" in err
    code, out, _ = invoke(tmp_path, "--account", "2")
    assert code == 0
    assert "Signs in to account 2 once" in out
