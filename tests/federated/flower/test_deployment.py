"""The same task on Flower's deployment runtime: SuperLink + three SuperNodes on the loopback.

TLS on, SuperNode authentication on (keys registered under the site names), telemetry off. One
federation serves the whole scenario (starting it is most of the cost): plain HTTP refused, a
SuperNode with an unregistered key refused, a count equal to the in-process runtime's, and a
run during which one site is killed after the set-up round. (A run that stops cleanly with too
few sites goes through the same ServerApp code: tests/federated/flower/test_serverapp.py.)
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cardiobox.cli.main import app
from cardiobox.federated import run
from cardiobox.federated.flower import processes, submit
from cardiobox.federated.flower.certs import ServerCertificates, dev_certificates, node_keypair
from cardiobox.federated.flower.processes import FlowerProcess
from cardiobox.federated.flower.site import SiteConfig
from cardiobox.privacy.policy import SitePolicy

pytestmark = pytest.mark.slow

PARAMS = {"where": "age > 60"}
POLICY = "cardiobox_policy: 1\nmin_sites: 2\nmin_cell_count: 5\n"
#: Seconds a site has per request in the run where one is killed (a live site answers in a
#: few seconds: the SuperNode asks the SuperLink for messages every 3 s when idle).
KILL_TIMEOUT = 25.0


@dataclass
class Federation:
    superlink: FlowerProcess
    certs: ServerCertificates
    sites: dict[str, FlowerProcess]
    csvs: dict[str, Path]
    root: Path
    started: list[FlowerProcess]

    def run(self, name: str, **kw: object) -> submit.Submitted:
        return submit.submit(
            "count",
            PARAMS,
            self.superlink.address,
            self.certs.ca,
            workdir=self.root / name,
            **kw,  # type: ignore[arg-type]
        )


@pytest.fixture
def federation(tmp_path: Path, hf_sites: dict[str, Path]) -> Iterator[Federation]:
    certs = dev_certificates(tmp_path / "certs")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    started: list[FlowerProcess] = []
    try:
        superlink = processes.start_superlink(tmp_path / "hub", certs)
        started.append(superlink)
        admin = processes.cli_home(tmp_path / "admin", superlink.address, certs.ca)
        keys = {name: node_keypair(tmp_path / "keys", name) for name in hf_sites}
        processes.register_nodes(admin, {name: k.public for name, k in keys.items()})
        sites: dict[str, FlowerProcess] = {}
        for name, csv in hf_sites.items():
            config = SiteConfig(
                name, csv, superlink.address, certs.ca, keys[name].private, policy=policy,
                workdir=tmp_path / f"flower-{name}",
            )  # fmt: skip
            sites[name] = processes.start_supernode(config, tmp_path / f"site-{name}", wait=False)
            started.append(sites[name])
        for site in sites.values():
            processes.wait_connected(site)
        yield Federation(superlink, certs, sites, hf_sites, tmp_path, started)
    finally:
        descendants = {p.pid: p.descendants() for p in started}
        processes.stop_all(started)
        alive = [pid for p in started for pid in [p.pid, *descendants[p.pid]] if _alive(pid)]
        assert not alive, f"processes left running: {alive}"


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _in_process(federation: Federation) -> dict[str, int | None]:
    """The same count on the in-process runtime, on copies of the site tables."""
    folder = federation.root / "reference"
    folder.mkdir()
    copies = {s: Path(shutil.copy(p, folder / p.name)) for s, p in federation.csvs.items()}
    report = run("count", copies, PARAMS, policy=SitePolicy(min_sites=2, min_cell_count=5))
    return dict(report.result["per_site"]) if report.result else {}


def _check_tls_only(federation: Federation) -> None:
    host, port = federation.superlink.address.split(":")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        opener.open(f"http://{host}:{port}/health", timeout=5)


def _start_rogue(federation: Federation) -> FlowerProcess:
    """A SuperNode whose key the hub never registered (node authentication must refuse it)."""
    keys = node_keypair(federation.root / "rogue-keys", "north")
    config = SiteConfig(
        "north", federation.csvs["north"], federation.superlink.address, federation.certs.ca,
        keys.private, workdir=federation.root / "flower-rogue",
    )  # fmt: skip
    rogue = processes.start_supernode(config, federation.root / "site-rogue", wait=False)
    federation.started.append(rogue)
    return rogue


def test_count_on_flower_matches_in_process_and_survives_a_killed_site(
    federation: Federation,
) -> None:
    _check_tls_only(federation)
    rogue = _start_rogue(federation)
    expected = _in_process(federation)
    assert set(expected) == set(federation.sites) and all(expected.values())

    # 1. The count over TLS, from three authenticated SuperNodes, equals the in-process one.
    report = submit.wait_report(federation.run("count"), wait=120)
    assert report.result is not None
    assert report.result["per_site"] == expected
    assert report.result["total"] == sum(n for n in expected.values() if n)
    assert report.sites == sorted(federation.sites)
    assert report.failed == {} and report.refused == {}
    with pytest.raises(processes.FlowerProcessError, match="Failed to activate SuperNode"):
        processes.wait_connected(rogue, timeout=60)
    # The same through the command line.
    cli = CliRunner().invoke(
        app,
        ["fed", "run", "count", "--params", json.dumps(PARAMS), "--superlink",
         federation.superlink.address, "--root-cert", str(federation.certs.ca), "--json"],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["result"]["per_site"] == expected

    # 2. A site killed after the set-up round is reported failed; the two others finish.
    victim = "south"
    log = federation.sites[victim]
    sent = log.log_text().count("Sent successfully")
    pending = federation.run("killed", min_sites=2, timeout=KILL_TIMEOUT)
    deadline = time.monotonic() + 60
    while log.log_text().count("Sent successfully") <= sent:  # its set-up reply left
        assert time.monotonic() < deadline, "the set-up round never reached the victim"
        time.sleep(0.05)
    federation.sites[victim].kill()
    report = submit.wait_report(pending, wait=180)
    assert report.result is not None
    assert report.sites == sorted(set(federation.sites) - {victim})
    assert set(report.failed) == {victim}
    assert report.failed[victim].startswith("round 1:")
    assert report.result["per_site"] == {s: n for s, n in expected.items() if s != victim}
    assert report.result["sites_failed"] == report.failed
