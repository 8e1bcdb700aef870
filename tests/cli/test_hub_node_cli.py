"""`cardiobox hub start` and `cardiobox node start|keygen`: argument checks before any process.

The commands start long-running Flower processes; their end-to-end run is covered by
tests/federated/flower/test_deployment.py. Here: what they refuse, and the key generator.
"""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from cardiobox.cli import hub_cmd, node_cmd

runner = CliRunner()
cli = typer.Typer()
cli.add_typer(hub_cmd.app, name="hub")
cli.add_typer(node_cmd.app, name="node")


def test_keygen_writes_a_pair_and_never_overwrites(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["node", "keygen", "--site", "north", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "north.key").exists() and (tmp_path / "north.pub").exists()
    again = runner.invoke(cli, ["node", "keygen", "--site", "north", "--out", str(tmp_path)])
    assert again.exit_code == 2 and "exists already" in again.output


def test_node_start_names_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(
        cli,
        ["node", "start", "--site", "north", "--data", str(tmp_path / "none.csv"),
         "--superlink", "127.0.0.1:9093", "--root-cert", str(tmp_path / "ca.crt"),
         "--auth-key", str(tmp_path / "north.key")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "source: no such file" in result.output and "none.csv" in result.output


def test_hub_start_requires_tls(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["hub", "start", "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "TLS is required" in result.output
    empty = tmp_path / "certs"
    empty.mkdir()
    result = runner.invoke(cli, ["hub", "start", "--certs", str(empty), "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "missing" in result.output and "server.key" in result.output


def test_hub_start_checks_authorized_keys_first(tmp_path: Path) -> None:
    keys = tmp_path / "keys.csv"
    keys.write_text("site,public_key\nnorth,not-a-key.pub\n")
    result = runner.invoke(
        cli,
        ["hub", "start", "--dev-certs", "--authorized-keys", str(keys), "--workdir",
         str(tmp_path / "hub")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "keys.csv:2" in result.output and "cannot read" in result.output
    assert not (tmp_path / "hub" / "superlink.log").exists()  # nothing was started
