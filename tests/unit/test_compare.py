"""Your machine against the reference: each verdict, and its reasons taken only from what the runs recorded."""
import json

from load.compare import compare_chapter, report
from load.results import Claims


def write_claims(folder, rows):
    claims = Claims()
    for claim, values, kwargs in rows:
        claims.add(claim, values, scenario=kwargs.pop("scenario", "latency"), **kwargs)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    claims.write(folder / "figures" / "claims.csv")


def write_meta(folder, scenario, *, cores=2, valid=True, size="default"):
    run = folder / scenario / "one" / "rep-1"
    run.mkdir(parents=True, exist_ok=True)
    (run / "meta.json").write_text(json.dumps({"size": size, "valid": valid, "machine": {"cpu_count": cores},
                                               "invalid_reasons": [] if valid else ["12 of 100 iterations fell behind"],
                                               "loadgen": {"max_process_utilisation": 0.3}}))


REFERENCE = [
    ("latency (ms)", [100, 110, 120], dict(id="4.1", size="default", article=150)),
    ("throughput (/s)", [10, 10.5], dict(id="4.2", size="default")),
    ("lost messages", [0, 0, 0], dict(id="1.3", size="default", digits=0, match="exact")),
    ("clients held", [10000], dict(id="1.6", size="workshop", digits=0, scenario="capacity")),
    ("not in the ledger", [1], dict(size="default")),
    ("failover gap (s)", [1.6], dict(id="6.2", size="default", scenario="failover")),
]


def test_each_ledger_row_gets_a_verdict_and_only_recorded_reasons(tmp_path):
    reference, results = tmp_path / "reference", tmp_path / "results"
    write_claims(reference, REFERENCE)
    write_meta(reference, "latency", cores=4)
    mine = results / "04-x"
    write_claims(mine, [
        ("latency (ms)", [149.0], dict(id="4.1", size="default")),      # 120 + 25% = 150: inside
        ("throughput (/s)", [14.0], dict(id="4.2", size="default")),    # 10.5 + 25% = 13.1: outside
        ("lost messages", [1], dict(id="1.3", size="default", digits=0, match="exact")),
        ("clients held", [2000], dict(id="1.6", size="default", digits=0, scenario="capacity")),
    ])
    write_meta(mine, "latency", cores=2, valid=False)
    write_meta(mine, "capacity", size="default")
    (mine / "failover").mkdir()
    (mine / "failover" / "skipped.json").write_text(json.dumps({"size": "default", "missing": ["root: run as root"]}))
    rows = {row["id"]: row for row in compare_chapter("04-x", results, reference)}
    assert set(rows) == {"4.1", "4.2", "1.3", "1.6", "6.2"}            # rows without an id are not compared
    assert rows["4.1"]["verdict"] == "reproduced" and rows["4.1"]["reference"] == "110.0 (100.0-120.0, 3 runs, default)"
    assert rows["4.2"]["verdict"] == "outside the reference's range"
    assert "1 of your runs invalid (12 of 100 iterations fell behind)" in rows["4.2"]["why"]
    assert "2 cores here, 4 on the reference machine" in rows["4.2"]["why"]
    assert rows["1.3"]["verdict"] == "differs"
    assert rows["1.6"]["verdict"] == "not run at this size" and "SIZE=workshop" in rows["1.6"]["why"]
    assert rows["6.2"]["verdict"] == "not run" and rows["6.2"]["why"] == "root: run as root"


def test_the_report_is_printed_and_written(tmp_path, monkeypatch, capsys):
    import load.compare as compare
    reference = tmp_path / "reference"
    write_claims(reference, REFERENCE[:1])
    monkeypatch.setattr(compare, "reference_dir", lambda slug: reference)
    rows = report(["04-x"], tmp_path / "results")
    assert rows[0]["verdict"] == "not run"
    assert "| 4.1 | latency (ms) | 150 |" in (tmp_path / "results" / "comparison.md").read_text()
    assert "1 rows: 1 not run" in capsys.readouterr().out
