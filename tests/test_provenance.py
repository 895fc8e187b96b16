"""Provenance manifests: written by every command, walked back by `topogen provenance`."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from topogen.io import provenance

SECRET = "sk-test-0123456789abcdef-not-a-real-key"


@pytest.fixture
def chain(cli, structure_files, tmp_path):
    """import (two tables) -> merge, run as real commands with a secret in the environment."""
    env = {"MP_API_KEY": SECRET, "SOME_TOKEN": SECRET + "-2"}
    a, b, m = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "m.parquet"
    for out, key in ((a, "cif"), (b, "extxyz")):
        res = cli("data", "import", structure_files[key], "--out", out, "--source", SECRET, env=env)
        assert res.returncode == 0, res.stderr
    res = cli("data", "merge", a, b, "--out", m, env=env)
    assert res.returncode == 0, res.stderr
    return {"a": a, "b": b, "m": m, "inputs": structure_files}


def test_every_output_has_a_complete_manifest(chain):
    for out in (chain["a"], chain["m"]):
        for path in (out, Path(f"{out}.quarantine.csv")):
            manifest = json.loads(Path(f"{path}.prov.json").read_text())
            assert manifest["file"] == path.name
            assert manifest["sha256"] == provenance.sha256(path)
            assert manifest["argv"][1:3] == ["data", (out is chain["a"] and "import") or "merge"]
            assert manifest["code"]["version"]
            assert manifest["packages"]["pymatgen"] and manifest["packages"]["torch"]
            assert manifest["host"] == socket.gethostname()
            assert manifest["started"] <= manifest["finished"]
            assert "seeds" in manifest and "config" in manifest
    merge = json.loads(Path(f"{chain['m']}.prov.json").read_text())
    assert merge["config"]["tables"] == [str(chain["a"]), str(chain["b"])]
    assert [i["sha256"] for i in merge["inputs"]] == [
        provenance.sha256(chain["a"]),
        provenance.sha256(chain["b"]),
    ]


def test_code_version_comes_from_git_in_a_checkout(repo_root):
    info = provenance.code_version()
    if (repo_root / ".git").exists():
        assert info["git"] and isinstance(info["dirty"], bool)


def test_secrets_never_reach_a_manifest(chain):
    manifests = list(chain["m"].parent.glob("*.prov.json"))
    assert len(manifests) == 6
    for path in manifests:
        text = path.read_text()
        assert SECRET not in text, path
        assert provenance.REDACTED in text or "merge" in text


def test_secret_config_keys_are_redacted():
    cfg = {"mp": {"api_key": "abc", "query": {"elements": ["Bi"]}}, "token": "t", "tokens": 5}
    assert provenance.redact(cfg) == {
        "mp": {"api_key": provenance.REDACTED, "query": {"elements": ["Bi"]}},
        "token": provenance.REDACTED,
        "tokens": 5,
    }


def test_provenance_prints_both_steps(cli, chain):
    res = cli("provenance", chain["m"])
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "topogen data merge" in out and out.count("topogen data import") == 2
    assert "MoS2.cif" in out and "pair.extxyz" in out and "raw input" in out
    assert "MODIFIED" not in out
    as_json = json.loads(cli("provenance", "--json", chain["m"]).stdout)
    assert [i["command"] for i in as_json["inputs"]] == ["topogen data import"] * 2


def test_modified_intermediate_is_named(cli, chain):
    with open(chain["a"], "ab") as fh:
        fh.write(b"tampered")
    res = cli("provenance", chain["m"])
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(chain["a"]) in lines[0] and "checksum no longer matches" in lines[0]
    assert "MODIFIED" in res.stdout  # the tree is still printed


def test_modified_raw_input_is_named(cli, chain):
    raw = chain["inputs"]["extxyz"]
    raw.write_text(raw.read_text().replace("Bi", "Sb"))
    res = cli("provenance", chain["m"])
    assert res.returncode == 1 and raw.name in res.stderr


def test_modified_final_file_is_named(cli, chain):
    chain["m"].write_bytes(chain["m"].read_bytes() + b"x")
    res = cli("provenance", chain["m"])
    assert res.returncode == 1 and str(chain["m"]) in res.stderr


def test_missing_intermediate_is_named(cli, chain):
    chain["b"].unlink()
    res = cli("provenance", chain["m"])
    assert res.returncode == 1
    assert str(chain["b"]) in res.stderr and "missing" in res.stderr


def test_deleted_manifest_of_an_intermediate_is_named_not_called_raw(cli, chain):
    """An intermediate whose manifest was deleted used to show as a "raw input", exit 0."""
    provenance.manifest_path(chain["a"]).unlink()
    res = cli("provenance", chain["m"])
    assert res.returncode == 1
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"topogen: error: {chain['a']}: its manifest (") and "is gone" in line
    assert "MANIFEST DELETED" in res.stdout
    raw = next(ln for ln in res.stdout.splitlines() if chain["inputs"]["extxyz"].name in ln)
    assert "raw input" in raw and "ok" in raw  # a real raw input is still one


def test_file_without_manifest_is_an_error(cli, tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    res = cli("provenance", plain)
    assert res.returncode == 1 and "no provenance manifest" in res.stderr


def test_directory_checksum_tracks_content(tmp_path):
    d = tmp_path / "pseudos"
    d.mkdir()
    (d / "Bi.upf").write_text("a")
    first = provenance.sha256(d)
    (d / "Bi.upf").write_text("b")
    assert provenance.sha256(d) != first
