"""A site's config, its SuperNode command line, and the ClientApp's own-process rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flwr.common.config import parse_config_args

from cardiobox.errors import InputError
from cardiobox.federated.flower import clientapp
from cardiobox.federated.flower.certs import dev_certificates, node_keypair
from cardiobox.federated.flower.site import SiteConfig, check_site, node_config, supernode_command


@pytest.fixture
def config(tmp_path: Path) -> SiteConfig:
    data = tmp_path / "my data" / "north.csv"
    data.parent.mkdir()
    data.write_text("age\n70\n")
    certs = dev_certificates(tmp_path / "certs")
    keys = node_keypair(tmp_path / "keys", "north")
    policy = tmp_path / "policy.yaml"
    policy.write_text("cardiobox_policy: 1\nmin_sites: 2\n")
    return SiteConfig("north", data, "127.0.0.1:9093", certs.ca, keys.private, policy=policy)


def test_config_round_trips_through_json(config: SiteConfig) -> None:
    assert SiteConfig.from_json(config.to_json()) == config
    with_port = SiteConfig(**{**vars(config), "runtime_port": 9100, "workdir": Path("/w")})
    assert SiteConfig.from_json(with_port.to_json()) == with_port


def test_node_config_is_what_flower_parses(config: SiteConfig) -> None:
    # The SuperNode parses --node-config with this function; paths with spaces stay whole.
    parsed = parse_config_args([node_config(config)])
    assert parsed == {
        "site": "north",
        "source": str(config.source.resolve()),
        "policy": str(config.policy.resolve()) if config.policy else "",
        "state": "",
    }


def test_supernode_runs_with_tls_auth_and_process_isolation(config: SiteConfig) -> None:
    args = supernode_command(config, 9100)
    assert args[args.index("--root-certificates") + 1] == str(config.root_cert.resolve())
    assert args[args.index("--auth-supernode-private-key") + 1] == str(config.auth_key.resolve())
    assert args[args.index("--isolation") + 1] == "process"
    assert args[args.index("--host") + 1] == "127.0.0.1"
    assert "--insecure" not in args and "--allow-runtime-dependency-installation" not in args


def test_quotes_in_paths_are_refused(config: SiteConfig, tmp_path: Path) -> None:
    odd = tmp_path / "o'brien.csv"
    odd.write_text("age\n1\n")
    with pytest.raises(InputError, match="must not hold a quote"):
        node_config(SiteConfig(**{**vars(config), "source": odd}))


def test_check_site_names_the_missing_file(config: SiteConfig, tmp_path: Path) -> None:
    check_site(config)
    missing = tmp_path / "nope.key"
    with pytest.raises(InputError, match="auth key: no such file") as err:
        check_site(SiteConfig(**{**vars(config), "auth_key": missing}))
    assert err.value.location.file == str(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("cardiobox_policy: 1\nmin_sites: zero\n")
    with pytest.raises(InputError, match="min_sites"):
        check_site(SiteConfig(**{**vars(config), "policy": bad}))


def test_client_app_refuses_to_answer_outside_a_site_process() -> None:
    nothing: Any = None
    with pytest.raises(RuntimeError, match="subprocess isolation"):
        clientapp.answer(nothing, nothing)
    with pytest.raises(RuntimeError, match="subprocess isolation"):
        clientapp.hello(nothing, nothing)


def test_node_config_must_name_the_site_and_source() -> None:
    with pytest.raises(ValueError, match="'site' must be a non-empty string"):
        clientapp.site_name({"source": "/x.csv"})
    with pytest.raises(ValueError, match="'source' must be a non-empty string"):
        clientapp.site_node({"site": "north", "source": 3})
