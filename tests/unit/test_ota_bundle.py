"""`sen ota keygen|build|verify` (gateway/ops/ota.py, ota_keys.py): a signed bundle checks out,
and every bad one is refused with the reason code a board reports (DESIGN.md, OTA): a bad
signature, a different key, a wrong board profile, a changed file, a truncated bundle, trailing
bytes, an unannounced downgrade, too old a MicroPython."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.ops import ota, ota_keys
from gateway.ops.ota import HEAD, MAGIC, OtaError
from tests.firmware.ota_fixtures import SMALL_FILES, bundle, firmware, keys

__all__ = ["firmware", "keys"]  # fixtures, shared with the firmware's OTA tests


def _bundle(keys: Path, firmware: Path, out: Path, **over: object) -> bytes:
    return bundle(keys, firmware, out, **{"boards": ["sim", "yolo-uno"], **over})


def _pub(keys: Path) -> bytes:
    return ota_keys.load_pub(keys / "ota.pub")


def _refused(data: bytes, pub: bytes, reason: str, **kw: str) -> str:
    with pytest.raises(OtaError) as caught:
        ota.verify(data, pub, **kw)
    assert caught.value.reason == reason, str(caught.value)
    return str(caught.value)


def test_keygen_writes_a_secret_key_and_a_hex_public_key(tmp_path: Path) -> None:
    key_path, pub_path = ota_keys.keygen(tmp_path)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert ota_keys.raw_public(ota_keys.load_key(key_path)) == ota_keys.load_pub(pub_path)
    with pytest.raises(OtaError, match="exists already") as caught:
        ota_keys.keygen(tmp_path)
    assert caught.value.reason == "exists"
    old = pub_path.read_text()
    ota_keys.keygen(tmp_path, force=True)
    assert pub_path.read_text() != old and stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_a_bundle_holds_the_signed_manifest_and_every_file_but_the_loader(keys: Path, firmware: Path,
                                                                          tmp_path: Path) -> None:
    data = _bundle(keys, firmware, tmp_path / "b.senota")
    manifest = ota.verify(data, _pub(keys), board="sim", running="1.4.0", mpy_version="1.24.1")
    assert data.startswith(MAGIC)
    assert [f["path"] for f in manifest["files"]] == SMALL_FILES
    assert manifest["version"] == "1.5.0" and manifest["boards"] == ["sim", "yolo-uno"]
    assert manifest["min_mpy"] == "1.24" and manifest["mpy"] is None and manifest["downgrade"] is False
    assert manifest["key"] == ota_keys.key_id(_pub(keys))
    for f in manifest["files"]:
        raw = (firmware / f["path"]).read_bytes()
        assert f["size"] == len(raw) and f["sha256"] == hashlib.sha256(raw).hexdigest()
    assert manifest["total"] == sum(f["size"] for f in manifest["files"])
    assert len(data) == ota.check_head(data, _pub(keys)).size


def test_mpy_bundles_precompile_lib_for_the_boards_architecture(keys: Path, firmware: Path, tmp_path: Path) -> None:
    cross = ota.find_mpy_cross()
    data = _bundle(keys, firmware, tmp_path / "m.senota", boards=["yolo-uno"], mpy=True, mpy_cross=cross)
    manifest = ota.verify(data, _pub(keys), board="yolo-uno")
    assert manifest["mpy"] == "xtensawin"
    assert [f["path"] for f in manifest["files"]] == ["lib/app.mpy", "lib/empty.mpy", "lib/log.mpy", "main.py"]
    with pytest.raises(OtaError, match="different code"):
        _bundle(keys, firmware, tmp_path / "x.senota", boards=["yolo-uno", "esp32-c3-devkitm-1"], mpy=True,
                mpy_cross=cross)


def test_the_real_firmware_bundles_without_boot_py(keys: Path, tmp_path: Path) -> None:
    data = _bundle(keys, ota.FIRMWARE_DIR, tmp_path / "r.senota")
    paths = [f["path"] for f in ota.verify(data, _pub(keys))["files"]]
    assert "boot.py" not in paths and "main.py" in paths and "lib/ed25519.py" in paths


def test_a_bad_signature_is_refused(keys: Path, firmware: Path, tmp_path: Path) -> None:
    data = bytearray(_bundle(keys, firmware, tmp_path / "b.senota"))
    data[len(MAGIC) + 4 + 10] ^= 0x01  # a bit of the signature
    assert "does not verify" in _refused(bytes(data), _pub(keys), "bad_signature")


def test_a_changed_manifest_is_refused(keys: Path, firmware: Path, tmp_path: Path) -> None:
    data = _bundle(keys, firmware, tmp_path / "b.senota")
    forged = data.replace(b'"boards":["sim","yolo-uno"]', b'"boards":["sim","esp32-x"]')
    assert forged != data
    _refused(forged, _pub(keys), "bad_signature", board="esp32-x")


def test_a_different_key_is_refused(keys: Path, firmware: Path, tmp_path: Path) -> None:
    ota_keys.keygen(tmp_path / "other")
    data = _bundle(keys, firmware, tmp_path / "b.senota")
    message = _refused(data, ota_keys.load_pub(tmp_path / "other" / "ota.pub"), "other_key")
    assert ota_keys.key_id(_pub(keys)) in message


def test_a_wrong_board_profile_is_refused(keys: Path, firmware: Path, tmp_path: Path) -> None:
    data = _bundle(keys, firmware, tmp_path / "b.senota")
    assert "for sim, yolo-uno, not esp32-devkitc" in _refused(data, _pub(keys), "wrong_board", board="esp32-devkitc")
    with pytest.raises(Exception, match="no such board profile"):
        _bundle(keys, firmware, tmp_path / "c.senota", boards=["no-such-board"])


def test_a_changed_file_is_refused(keys: Path, firmware: Path, tmp_path: Path) -> None:
    data = bytearray(_bundle(keys, firmware, tmp_path / "b.senota"))
    data[-3] ^= 0x20  # inside main.py, the last file
    assert "main.py does not match" in _refused(bytes(data), _pub(keys), "file_changed")


@pytest.mark.parametrize("cut", [5, len(MAGIC) + 2, HEAD + 3, "file"])
def test_a_truncated_bundle_is_refused(keys: Path, firmware: Path, tmp_path: Path, cut: int | str) -> None:
    data = _bundle(keys, firmware, tmp_path / "b.senota")
    end = len(data) - 1 if cut == "file" else int(cut)
    _refused(data[:end], _pub(keys), "truncated")


def test_trailing_bytes_and_a_foreign_file_are_refused(keys: Path, firmware: Path, tmp_path: Path) -> None:
    data = _bundle(keys, firmware, tmp_path / "b.senota")
    _refused(data + b"x", _pub(keys), "trailing_data")
    _refused(b"PK\x03\x04" + data, _pub(keys), "bad_magic")


def test_no_downgrade_unless_the_bundle_is_signed_for_one(keys: Path, firmware: Path, tmp_path: Path) -> None:
    data = _bundle(keys, firmware, tmp_path / "b.senota")
    assert "not newer than the running 1.10.0" in _refused(data, _pub(keys), "downgrade", running="1.10.0")
    _refused(data, _pub(keys), "downgrade", running="1.5.0")
    back = _bundle(keys, firmware, tmp_path / "d.senota", downgrade=True)
    assert ota.verify(back, _pub(keys), running="1.10.0")["downgrade"] is True


def test_too_old_a_micropython_is_refused(keys: Path, firmware: Path, tmp_path: Path) -> None:
    data = _bundle(keys, firmware, tmp_path / "b.senota", min_mpy="1.25")
    assert "sen flash" in _refused(data, _pub(keys), "old_micropython", mpy_version="1.24.1")


def test_bad_versions_and_keys_are_refused(keys: Path, firmware: Path, tmp_path: Path) -> None:
    with pytest.raises(OtaError, match="dotted numbers"):
        _bundle(keys, firmware, tmp_path / "b.senota", version="v1.5")
    (tmp_path / "junk.pub").write_text("not a key\n")
    with pytest.raises(OtaError, match="64 hex digits"):
        ota_keys.load_pub(tmp_path / "junk.pub")
    with pytest.raises(OtaError, match="not a readable private key"):
        ota_keys.load_key(keys / "ota.pub")


def test_the_commands(keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "keys"
    assert main(["ota", "keygen", "--out", str(out)]) == 0
    assert main(["ota", "keygen", "--out", str(out)]) == 2
    bundle = tmp_path / "app.senota"
    assert main(["ota", "build", "--key", str(out / "ota.key"), "--version", "2.0.0", "--board", "sim",
                 "--out", str(bundle)]) == 0
    assert main(["ota", "verify", str(bundle), "--pub", str(out / "ota.pub"), "--board", "sim"]) == 0
    assert main(["ota", "verify", str(bundle), "--pub", str(keys / "ota.pub")]) == 2
    assert main(["ota", "verify", str(bundle), "--pub", str(out / "ota.pub"), "--board", "yolo-uno"]) == 2
    text = capsys.readouterr()
    assert "OK, version 2.0.0 for sim" in text.out
    assert "[other_key]" in text.err and "[wrong_board]" in text.err and "[exists]" in text.err
    manifest = json.loads(bundle.read_bytes()[HEAD:HEAD + ota.manifest_length(bundle.read_bytes()[:12])])
    assert manifest["version"] == "2.0.0"


def test_the_public_key_reaches_virtual_and_real_boards_configs(keys: Path, tmp_path: Path) -> None:
    # sen sim --ota-pubkey and sen provision --ota-pubkey put it in config.json's ota.pub
    from hardware import sim
    from hardware.boards import load_board
    from hardware.provision import ProvisionError, build_config

    pub = _pub(keys).hex()
    options = sim.SimOptions(broker_host="127.0.0.1", broker_port=1883, ota_pub=pub)
    assert sim.board_config(options, 0)["ota"] == {"pub": pub}
    assert "ota" not in sim.board_config(sim.SimOptions(broker_host="127.0.0.1", broker_port=1883), 0)
    config = build_config(load_board("sim"), site="lab", device_id="d1", broker_host="127.0.0.1", broker_port=1883,
                          ota_pub=pub)
    assert config["ota"] == {"pub": pub}
    with pytest.raises(ProvisionError, match="64 hex digits"):
        build_config(load_board("sim"), site="lab", device_id="d1", broker_host="h", broker_port=1, ota_pub="ab")
    out = tmp_path / "config.json"
    assert main(["provision", "--board", "sim", "--site", "lab", "--device", "d1", "--broker", "127.0.0.1",
                 "--ota-pubkey", str(keys / "ota.pub"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["ota"] == {"pub": pub}
