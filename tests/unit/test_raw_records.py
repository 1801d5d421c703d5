"""The raw record of every request reads the same from a results folder and a gzipped reference set."""
import gzip

from load.results import read_raw

HEADER = "start_time,name,response_time_ms,ok,response_length\n"


def test_plain_and_gzipped_request_records_are_read_alike(tmp_path):
    (tmp_path / "requests-1.csv").write_text(HEADER + "1.5,deliver sse,3.25,1,100\n")
    with gzip.open(tmp_path / "requests-2.csv.gz", "wt") as packed:
        packed.write(HEADER + "2.5,order sse,0.000,0,0\n")
    assert read_raw(tmp_path) == [
        {"start_time": 1.5, "name": "deliver sse", "response_time_ms": 3.25, "ok": True},
        {"start_time": 2.5, "name": "order sse", "response_time_ms": 0.0, "ok": False},
    ]
