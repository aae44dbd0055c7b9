"""Nothing runs for minutes without a word, nothing hangs (issue #11)."""

from __future__ import annotations

import socket
import time

import pytest

from dpaudit import progress
from dpaudit.errors import ConfigError, MissingFileError
from dpaudit.limits import SHADOW_MODELS, SYNTH_RECORDS, SizeLimit
from dpaudit.models import hub
from dpaudit.train.loop import ProgressBar


def _one_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "synth", "--n", "1000000000", "--out", "{tmp}/d"], "`--n` 1,000,000,000 is above 100,000 records"),
        (["attack", "--adapter", "{tmp}/a", "--shadows", "100000"], "`--shadows` 100,000 is above 64 shadow adapters"),
        (["audit", "--adapter", "{tmp}/a", "--out", "{tmp}/r", "--shadows", "100000"], "--yes"),
        (["demo", "--n", "1000000000", "--out", "{tmp}/r", "--runs", "{tmp}/runs"], "--yes"),
    ],
)
def test_absurd_sizes_are_refused_up_front_with_their_cost(cli, tmp_path, args, message):
    start = time.monotonic()
    code, _, stderr = cli(*(a.format(tmp=tmp_path) for a in args))
    assert code == 2 and message in _one_error(stderr)
    assert "would take about" in stderr and time.monotonic() - start < 10
    assert not (tmp_path / "d").exists() and not (tmp_path / "r").exists()


def test_yes_confirms_a_large_size():
    SYNTH_RECORDS.check(SYNTH_RECORDS.limit + 1, yes=True)
    SHADOW_MODELS.check(SHADOW_MODELS.limit, yes=False)
    with pytest.raises(ConfigError, match=r"about 3 h and 39 MB on disk"):
        SizeLimit("--n", 10, "records", seconds_per_unit=1.0, bytes_per_unit=3.6e3).check(10_800, yes=False)


def test_progress_without_a_terminal_prints_plain_lines(capsys, monkeypatch):
    """Under CI (stderr not a TTY) the live bar shows nothing until the end: plain lines instead."""
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 3600.0)
    with ProgressBar(True, total=5, start=0) as bar:
        for step in range(1, 6):
            bar.update(step, loss=2.5 - 0.1 * step, epsilon=0.5 * step)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("train step 1/5 loss 2.4000 ε 0.5 elapsed 0:00:00 left")
    assert lines[-1].startswith("train step 5/5 loss 2.0000 ε 2.5")
    assert len(lines) == 2  # first and last only, within the interval

    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.0)
    with ProgressBar(True, total=3, start=0) as bar:
        for step in range(1, 4):
            bar.update(step, loss=1.0, epsilon=None)
    assert len(capsys.readouterr().err.strip().splitlines()) == 3


def test_scoring_and_generation_speak_without_a_terminal(capsys, monkeypatch, micro_model, micro_tokenizer):
    """An audit's utility phase (perplexity, adherence generation) ran for minutes in silence in CI logs."""
    from dpaudit.evaluators.generation import generate_responses
    from dpaudit.models.scoring import score_tokens
    from tests.conftest import make_records

    model, tokenizer = micro_model, micro_tokenizer
    records = make_records(6)
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 3600.0)
    score_tokens(model, tokenizer, records, batch_size=4, progress=True)
    generate_responses(model=model, tokenizer=tokenizer, records=records, max_new_tokens=2, batch_size=4, progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(" elapsed")[0] for line in lines] == ["scoring 4/6", "scoring 6/6", "generating 4/6", "generating 6/6"]
    score_tokens(model, tokenizer, records, progress=False)
    assert capsys.readouterr().err == ""


def test_an_unreachable_hub_id_fails_within_seconds(monkeypatch):
    monkeypatch.setattr(hub, "is_cached", lambda repo_id: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with socket.socket() as silent:  # accepts connections (backlog) but never answers: a hanging hub
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.monotonic()
        with pytest.raises(MissingFileError, match=r"neither a local model nor reachable .*--base PATH"):
            hub.require_hub_model("someone/some-model", timeout=0.5)
        assert time.monotonic() - start < 5
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingFileError, match="HF_HUB_OFFLINE is set"):
        hub.require_hub_model("someone/some-model")


def test_load_base_checks_the_hub_before_from_pretrained(monkeypatch):
    from dpaudit.models.base import load_base

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "is_cached", lambda repo_id: False)
    start = time.monotonic()
    with pytest.raises(MissingFileError, match="neither a local model nor reachable"):
        load_base("someone/some-model")
    assert time.monotonic() - start < 10


def test_a_batch_far_larger_than_the_data_is_refused(cli, tmp_path, micro_base_dir, isolated_cache):
    """`--batch-size 1000000` without DP used to run one step and exit 0."""
    import json

    from tests.conftest import make_records

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r.to_json()) + "\n" for r in make_records(20)), encoding="utf-8")
    code, _, stderr = cli("train", "--data", data, "--base", micro_base_dir, "--out", tmp_path / "a",
                          "--batch-size", "1000000", "--max-steps", "1")
    assert code == 2 and "`--batch-size` 1,000,000 is larger than the 10 training examples" in _one_error(stderr)
    assert not (tmp_path / "a").exists()
