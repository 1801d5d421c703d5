"""Chapter 2: deliberate bugs in the gateway and the store, each expected to fail the named test.

Each entry: replace ``find`` (which occurs exactly once in ``path``) by ``replace``, run the test
named in ``fails``, and expect it to fail; without the bug it passes.
"""

BUGS = [
    {"name": "replay after the stored ack only, ignoring what the device says it has (duplicates)",
     "path": "demos/push_at_scale/gateway.py",
     "find": "start = max(after.get(name, 0), acked.get(stream, 0))",
     "replace": "start = acked.get(stream, 0)",
     "fails": "tests/integration/test_push_at_scale_guarantees.py::"
              "test_acks_dropped_on_purpose_with_notify_then_pull_repeat_nothing"},
    {"name": "every pull answered from the device's number, whatever this connection sent (duplicates)",
     "path": "demos/push_at_scale/gateway.py",
     "find": "self.store.after(stream, max(after, device.pulled[name]), 100)",
     "replace": "self.store.after(stream, after, 100)",
     "fails": "tests/integration/test_push_at_scale_guarantees.py::"
              "test_acks_dropped_on_purpose_with_notify_then_pull_repeat_nothing"},
    {"name": "no gap marker past the offline bound: a silent hole",
     "path": "demos/push_at_scale/store.py",
     "find": "gap = (after + 1, first_kept - 1) if first_kept > after + 1 and last > after else None",
     "replace": "gap = None",
     "fails": "tests/integration/test_push_at_scale_guarantees.py::"
              "test_a_device_past_the_offline_bound_gets_a_gap_marker"},
    {"name": "acks may move backwards: a late ack makes a reconnect replay what the device has",
     "path": "demos/push_at_scale/store.py",
     "find": "SET seq = CASE WHEN excluded.seq > push_acks.seq THEN excluded.seq ELSE push_acks.seq END",
     "replace": "SET seq = excluded.seq",
     "fails": "tests/unit/test_push_at_scale_store.py::test_acks_are_cumulative_and_never_move_back"},
    {"name": "a flood is not closed",
     "path": "demos/push_at_scale/gateway.py",
     "find": "        if device.frames > MAX_FRAMES_PER_S:\n",
     "replace": "        if device.frames > 10**9:\n",
     "fails": "tests/integration/test_push_at_scale_bad_input.py::"
              "test_bad_input_gets_the_right_answer_and_the_others_keep_receiving"},
    {"name": "appends lock their streams in the caller's order: two pushes to overlapping lists deadlock on PostgreSQL",
     "path": "demos/push_at_scale/store.py",
     "find": "for stream in sorted(set(streams)):",
     "replace": "for stream in streams:",
     "fails": "tests/integration/test_push_at_scale_store_postgres.py::"
              "test_concurrent_appends_to_overlapping_lists_number_every_stream_without_a_hole"},
    {"name": "acks written in arrival order: two gateways acking the same devices deadlock on PostgreSQL",
     "path": "demos/push_at_scale/store.py",
     "find": "rows = sorted(acks)",
     "replace": "rows = list(acks)",
     "fails": "tests/integration/test_push_at_scale_store_postgres.py::test_racing_acks_from_two_gateways_keep_the_largest"},
]
