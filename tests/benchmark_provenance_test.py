"""The benchmarks record which checkout produced their figures (README results quote commits)."""

import json
import re
import subprocess

from benchmarks import train_step_benchmark


def test_source_revision_names_the_checkout_commit():
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=train_step_benchmark.Path(__file__).parent).stdout
    except (OSError, subprocess.SubprocessError):
        head = None
    rev = train_step_benchmark.source_revision()
    if head is None:  # not a git checkout (an unpacked sdist): nothing to name
        assert rev == {"commit": None, "dirty": None}
    else:
        assert re.fullmatch(r"[0-9a-f]{40}", rev["commit"]) and rev["commit"] == head.strip()
        assert isinstance(rev["dirty"], bool)


def test_source_revision_without_git_is_none_not_an_error(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(train_step_benchmark.subprocess, "run", no_git)
    assert train_step_benchmark.source_revision() == {"commit": None, "dirty": None}


def test_every_emitted_json_line_names_its_checkout(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    train_step_benchmark.emit_json({"x": 1}, str(out))
    train_step_benchmark.emit_json({"x": 2, "source": {"commit": "given"}}, str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["x"] == 1 and lines[0]["source"] == train_step_benchmark.source_revision()
    assert lines[1]["source"] == {"commit": "given"}  # a record's own source is kept
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == lines[1]
