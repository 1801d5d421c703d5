"""Hand-made runs for the analysis tests: a run dict as ``results.load_runs`` returns it, with the
few files the analysis reads (raw requests, sampled ``*.jsonl``, any CSV) written in tmp_path."""
import csv
import json

import pytest

MACHINE = {"cpu_count": 2, "cpu_model": "Test CPU"}


@pytest.fixture
def make_run(tmp_path):
    """``make_run(name, params, rep=1, requests=[(name, ms, ok)], samples={"samples": [dict]},
    files={"timeline.csv": [dict]}, **meta)`` -> a run dict (its folder under tmp_path)."""
    def make(name: str, params: dict, rep: int = 1, *, requests=(), samples=None, files=None, **meta) -> dict:
        folder = tmp_path / name / f"rep-{rep}"
        (folder / "raw").mkdir(parents=True)
        with open(folder / "raw" / "requests-1.csv", "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["start_time", "name", "response_time_ms", "ok"])
            writer.writerows([1000.0 + i, request, ms, int(ok)] for i, (request, ms, ok) in enumerate(requests))
        for sampled, rows in (samples or {}).items():
            (folder / f"{sampled}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        for file_name, rows in (files or {}).items():
            with open(folder / file_name, "w", newline="") as out:
                writer = csv.DictWriter(out, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        return {"run": name, "repetition": rep, "params": params, "dir": folder, "scenario": "test-scenario",
                "size": "smoke", "valid": True, "notes": {}, "summary": {"by_name": {}},
                "machine": MACHINE, "git": {"commit": "0123456789abcdef"}, **meta}
    return make
