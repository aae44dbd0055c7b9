"""`dpaudit models build` and `dpaudit models list`."""

from __future__ import annotations

import json

import pytest

from dpaudit.models import base as base_mod
from tests.models.conftest import MICRO_BUILD


@pytest.fixture()
def micro_preset(monkeypatch):
    """Make the `tiny` preset the micro build so that the CLI builds it in a second."""
    monkeypatch.setattr(base_mod, "TinyBuildConfig", lambda: MICRO_BUILD)


def test_list_on_an_empty_cache(cli, isolated_cache):
    code, out, err = cli("models", "list", "--json")
    assert code == 0, err
    listing = json.loads(out)
    assert listing["cache_dir"] == str(isolated_cache / "models") and listing["cache"] == []
    presets = {row["preset"]: row for row in listing["presets"]}
    assert set(presets) == {"tiny", "smollm2-135m"}
    assert presets["tiny"]["built"] is False and presets["tiny"]["path"].startswith(str(isolated_cache))
    code, out, _ = cli("models", "list")
    assert code == 0 and "tiny" in out and "smollm2-135m" in out


def test_build_then_reuse_then_list(cli, micro_preset):
    code, out, err = cli("models", "build", "tiny", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["built"] is True and first["manifest"]["fingerprint"] == MICRO_BUILD.fingerprint()
    assert first["manifest"]["eval_loss"] < first["manifest"]["uniform_loss"]

    code, out, _ = cli("models", "build", "tiny", "--json")
    second = json.loads(out)
    assert code == 0 and second["built"] is False and second["cached"] is True and second["path"] == first["path"]

    code, out, _ = cli("models", "build", "--force", "--json")
    assert code == 0 and json.loads(out)["built"] is True

    code, out, _ = cli("models", "list", "--json")
    listing = json.loads(out)
    tiny = next(row for row in listing["presets"] if row["preset"] == "tiny")
    assert tiny["built"] is True and tiny["size_bytes"] > 0 and tiny["path"] == first["path"]
    assert [entry["kind"] for entry in listing["cache"]] == ["tiny"]

    code, out, _ = cli("models", "build")
    assert code == 0 and "already cached" in out
    code, out, _ = cli("models", "list")
    assert code == 0 and "yes" in out


def test_build_unknown_spec_is_a_usage_error(cli):
    code, _, err = cli("models", "build", "gpt-17")
    assert code == 2 and "can build 'tiny' or 'smollm2-135m'" in err and "Traceback" not in err
