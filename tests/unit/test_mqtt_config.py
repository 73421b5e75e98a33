"""The broker configuration `synergy mqtt-config` writes, mqtts:// URLs, and which device-state
messages the coordinator accepts. The real broker's behaviour: tests/integration/test_mqtt_security.py."""

from __future__ import annotations

import argparse
import ipaddress
import json
import ssl
import stat
from pathlib import Path

import pytest
import structlog
from cryptography import x509

from synergy.cli import mqtt_cmd
from synergy.errors import FailedPrecondition, InvalidArgument
from synergy.events import MAX_STATE_PAYLOAD, EventPublisher, MqttConfig
from synergy.security.ca import init_ca, issue, revoke
from synergy.security.identity import identity_from_pem
from synergy.security.mqtt import broker_files, render_acl, write_mosquitto_config


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ca")
    init_ca(directory)
    return directory


@pytest.fixture(scope="module")
def tls_dir(ca_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return issue(ca_dir, role="coordinator", name="coordinator", out_dir=tmp_path_factory.mktemp("coord")).directory


def directives(config: Path) -> list[tuple[str, str]]:
    """(keyword, value) of every non-comment line of a mosquitto config."""
    pairs = []
    for line in config.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            keyword, _, value = line.partition(" ")
            pairs.append((keyword, value))
    return pairs


# -- the files written ---------------------------------------------------------------------


def test_config_is_one_tls_listener_requiring_a_client_certificate(ca_dir: Path, tmp_path: Path) -> None:
    config = write_mosquitto_config(tmp_path / "out", ca_dir=ca_dir, port=18883)
    assert config == (tmp_path / "out" / "mosquitto.conf").absolute()
    pairs = directives(config)
    settings = dict(pairs)
    assert [v for k, v in pairs if k == "listener"] == ["18883 127.0.0.1"]  # one listener: TLS
    assert not {"port", "bind_address", "password_file", "psk_hint"} & settings.keys()
    assert settings["per_listener_settings"] == "true"
    assert settings["require_certificate"] == "true"
    assert settings["use_identity_as_username"] == "true"
    assert settings["allow_anonymous"] == "false"
    assert settings["persistence"] == "false"
    assert "user" not in settings  # mosquitto's own default unless asked
    # The listener's options come after the listener line (per_listener_settings).
    keys = [k for k, _ in pairs]
    assert keys.index("per_listener_settings") < keys.index("listener") < keys.index("acl_file")
    for key in ("cafile", "certfile", "keyfile", "crlfile", "acl_file"):
        path = Path(settings[key])
        assert path.is_absolute() and path.is_file(), key


def test_acl_lines(ca_dir: Path, tmp_path: Path) -> None:
    write_mosquitto_config(
        tmp_path, ca_dir=ca_dir, prefix="home/", coordinator_names=("coord-a", "coord-b"), reader_names=("alice",)
    )
    lines = [line for line in (tmp_path / "acl").read_text().splitlines() if line and not line.startswith("#")]
    # Nothing for anonymous clients: the first rule is the pattern (which applies to every user).
    assert lines[0] == "pattern write home/devices/%u/#"
    assert [line for line in lines if line.startswith("pattern")] == [lines[0]]
    coordinator_rules = [
        "topic read home/#",
        "topic write home/plan",
        "topic write home/apps/#",
        "topic write home/coordinator/#",
    ]
    a = lines.index("user coord-a")
    assert lines[a + 1 : a + 5] == coordinator_rules
    b = lines.index("user coord-b")
    assert lines[b + 1 : b + 5] == coordinator_rules
    r = lines.index("user alice")
    assert lines[r + 1 :] == ["topic read home/#"]
    assert not [line for line in lines if "readwrite" in line or line.startswith("topic write home/#")]


def test_acl_without_readers_gives_agents_nothing_to_read() -> None:
    acl = render_acl("synergy", ["coordinator"])
    reads = [line for line in acl.splitlines() if " read " in line]
    assert reads == ["topic read synergy/#"]  # the coordinator's, inside its user block
    assert acl.index("user coordinator") < acl.index("topic read synergy/#")


def test_broker_certificate_and_key(ca_dir: Path, tmp_path: Path) -> None:
    write_mosquitto_config(tmp_path, ca_dir=ca_dir, bind="10.1.2.3", server_name="mqtt-1", sans=("broker.lan",))
    files = broker_files(tmp_path)
    pem = files.cert.read_bytes()
    identity = identity_from_pem(pem)
    assert (identity.role, identity.name) == ("client", "mqtt-1")
    san = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) >= {"localhost", "broker.lan"}
    assert set(san.get_values_for_type(x509.IPAddress)) >= {ipaddress.ip_address(a) for a in ("127.0.0.1", "10.1.2.3")}
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert files.ca.read_bytes() == (ca_dir / "ca.pem").read_bytes()


def test_revoked_serials_are_in_the_crl(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    init_ca(ca)
    victim = issue(ca, role="agent", name="lost-ring", out_dir=tmp_path / "ring")
    write_mosquitto_config(tmp_path / "before", ca_dir=ca)
    crl = x509.load_pem_x509_crl((tmp_path / "before" / "crl.pem").read_bytes())
    assert len(crl) == 0
    revoke(ca, victim.serial)
    write_mosquitto_config(tmp_path / "after", ca_dir=ca)
    crl = x509.load_pem_x509_crl((tmp_path / "after" / "crl.pem").read_bytes())
    assert [r.serial_number for r in crl] == [victim.serial]
    ca_cert = x509.load_pem_x509_certificate((ca / "ca.pem").read_bytes())
    assert crl.issuer == ca_cert.subject and crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]


def test_run_as_user_line(ca_dir: Path, tmp_path: Path) -> None:
    config = write_mosquitto_config(tmp_path, ca_dir=ca_dir, run_as_user="mqtt")
    assert ("user", "mqtt") in directives(config)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"port": 0}, "port 0"),
        ({"port": 70000}, "port 70000"),
        ({"prefix": "a/#"}, "wildcard"),
        ({"prefix": "/"}, "empty"),
        ({"prefix": "$SYS"}, "'$'"),
        ({"coordinator_names": ()}, "coordinator name"),
        ({"coordinator_names": ("co/ord",)}, "name 'co/ord'"),
        ({"reader_names": ("+",)}, "name '+'"),
        ({"bind": ""}, "bind address"),
        ({"run_as_user": "a b"}, "user"),
    ],
)
def test_bad_arguments(ca_dir: Path, tmp_path: Path, kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        write_mosquitto_config(tmp_path / "out", ca_dir=ca_dir, **kwargs)  # type: ignore[arg-type]
    assert words in str(caught.value)
    assert not (tmp_path / "out").exists()  # nothing written


def test_out_dir_must_not_be_the_ca(ca_dir: Path) -> None:
    with pytest.raises(InvalidArgument, match="CA directory"):
        write_mosquitto_config(ca_dir, ca_dir=ca_dir)


def test_missing_ca(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="no CA"):
        write_mosquitto_config(tmp_path / "out", ca_dir=tmp_path / "nowhere")


# -- the command ---------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="synergy")
    mqtt_cmd.register(p.add_subparsers(dest="command", required=True))
    return p


def test_command_prints_files_and_the_mosquitto_command(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "broker conf"
    args = parser().parse_args(
        ["mqtt-config", "--ca-dir", str(ca_dir), "--out", str(out), "--port", "9883", "--coordinator-name", "c1", "c2"]
    )
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    config = (out / "mosquitto.conf").absolute()
    assert f"mosquitto -c '{config}'" in printed  # quoted: the path has a space
    assert f"wrote {config}" in printed
    assert "mqtts://127.0.0.1:9883" in printed
    assert ("listener", "9883 127.0.0.1") in directives(config)
    acl = (out / "acl").read_text()
    assert "user c1\n" in acl and "user c2\n" in acl and "user coordinator\n" not in acl


def test_command_defaults(ca_dir: Path, tmp_path: Path) -> None:
    args = parser().parse_args(["mqtt-config", "--ca-dir", str(ca_dir), "--out", str(tmp_path)])
    assert args.func(args) == 0
    assert ("listener", "8883 127.0.0.1") in directives(tmp_path / "mosquitto.conf")
    assert "user coordinator\ntopic read synergy/#\n" in (tmp_path / "acl").read_text()


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["mqtt-config", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default 8883)", "(default 127.0.0.1)", "(default synergy)", "(default coordinator)"):
        assert default in text


# -- mqtts:// URLs ---------------------------------------------------------------------------


def test_mqtts_url(tls_dir: Path) -> None:
    config = MqttConfig.from_url("mqtts://broker.lan", "home", tls_dir=tls_dir)
    assert (config.host, config.port, config.prefix, config.tls_dir) == ("broker.lan", 8883, "home", tls_dir)
    assert MqttConfig.from_url("mqtts://127.0.0.1:9999", tls_dir=tls_dir).port == 9999
    assert config.url == "mqtts://broker.lan:8883"


def test_mqtts_ssl_context_verifies_the_broker_and_presents_our_certificate(tls_dir: Path) -> None:
    context = MqttConfig.from_url("mqtts://127.0.0.1", tls_dir=tls_dir).ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert len(context.get_ca_certs()) == 1


def test_mqtts_without_tls_dir_names_what_is_missing() -> None:
    with pytest.raises(InvalidArgument, match="no TLS directory") as caught:
        MqttConfig.from_url("mqtts://127.0.0.1:8883")
    assert "ca.pem" in str(caught.value)


def test_mqtts_with_incomplete_tls_dir(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    with pytest.raises(InvalidArgument, match=r"lacks cert\.pem, key\.pem"):
        MqttConfig.from_url("mqtts://127.0.0.1", tls_dir=tmp_path)


def test_plain_mqtt_is_unchanged(tls_dir: Path) -> None:
    config = MqttConfig.from_url("mqtt://u:p@127.0.0.1")
    assert (config.host, config.port, config.username, config.password, config.tls_dir) == (
        "127.0.0.1",
        1883,
        "u",
        "p",
        None,
    )
    assert config.ssl_context() is None
    assert MqttConfig.from_url("127.0.0.1:1999").port == 1999
    with structlog.testing.capture_logs() as logs:
        assert MqttConfig.from_url("mqtt://127.0.0.1", tls_dir=tls_dir).tls_dir is None
    assert [e["event"] for e in logs] == ["mqtt_tls_dir_ignored"]


@pytest.mark.parametrize("url", ["http://127.0.0.1", "mqtts://", "mqtt://:1883", "mqtts://h:99999"])
def test_bad_urls(url: str, tls_dir: Path) -> None:
    with pytest.raises(InvalidArgument, match="MQTT URL"):
        MqttConfig.from_url(url, tls_dir=tls_dir)


# -- device-state messages the coordinator accepts ------------------------------------------


def publisher(prefix: str = "synergy") -> EventPublisher:
    return EventPublisher(MqttConfig("127.0.0.1", prefix=prefix), "test", f"{prefix}/coordinator/state", {})


def state(device_id: object, **extra: object) -> bytes:
    return json.dumps({"device_id": device_id, "state": "offline", "address": "127.0.0.1:1", **extra}).encode()


def test_state_from_the_devices_own_topic_is_accepted() -> None:
    accepted = publisher().accept_device_state("synergy/devices/ring/state", state("ring"))
    assert accepted is not None
    assert accepted[0] == "ring" and accepted[1]["state"] == "offline"
    nested = publisher("a/b").accept_device_state("a/b/devices/ring/state", state("ring"))
    assert nested is not None and nested[0] == "ring"


@pytest.mark.parametrize(
    ("topic", "raw", "reason"),
    [
        ("synergy/devices/ring/state", state("watch"), "device_id differs"),
        ("synergy/devices/ring/state", state(None), "device_id differs"),
        ("synergy/devices/ring/state", json.dumps({"state": "offline"}).encode(), "device_id differs"),
        ("synergy/devices/ring/state", state("ring", pad="x" * MAX_STATE_PAYLOAD), "too large"),
        ("synergy/devices/ring/state", b"{not json", "not JSON"),
        ("synergy/devices/ring/state", b"\xff\xfe", "not JSON"),
        ("synergy/devices/ring/state", b'["ring"]', "not a JSON object"),
        ("synergy/devices/ring/state", b"", "not JSON"),
        ("synergy/devices/ring/state", None, "non-binary"),
        ("synergy/devices/watch/ring/state", state("watch"), "not a device state topic"),
        ("synergy/devices/ring/telemetry", state("ring"), "not a device state topic"),
        ("other/devices/ring/state", state("ring"), "not a device state topic"),
        ("synergy/devices//state", state(""), "not a device state topic"),
    ],
)
def test_other_device_state_messages_are_ignored_with_a_debug_log(topic: str, raw: object, reason: str) -> None:
    with structlog.testing.capture_logs() as logs:
        assert publisher().accept_device_state(topic, raw) is None
    assert [(e["event"], e["log_level"]) for e in logs] == [("mqtt_state_ignored", "debug")]
    assert reason in logs[0]["reason"]
