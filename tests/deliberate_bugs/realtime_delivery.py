"""Chapter 1: deliberate bugs in the code that runs in a subprocess during the tests (the hub, the
transports, the fan-out), each expected to fail the named test. Mutation testing covers what the
in-process unit tests reach (inputs.py, store.py); these cover the rest, one guarantee each.

Each entry: replace ``find`` (which occurs exactly once in ``path``) by ``replace``, run the test
named in ``fails``, and expect it to fail; without the bug it passes.
"""

BUGS = [
    {"name": "doorbell ignored: other processes' messages come only through the safety net",
     "path": "demos/realtime_delivery/fanout.py",
     "find": "        if body.startswith(self.own):\n",
     "replace": "        if body:\n",
     "fails": "tests/integration/test_realtime_delivery_multiprocess.py::"
              "test_clients_on_one_process_get_every_message_sent_to_either_once_in_order"},
    {"name": "another process's messages skipped: publish without catching up from the store",
     "path": "demos/realtime_delivery/hub.py",
     "find": "            else:   # another process stored messages since this one's last: they go first\n"
             "                self._catch_up(conversation, channel)\n",
     "replace": "            else:\n                self._publish(channel, message)\n",
     "fails": "tests/integration/test_realtime_delivery_multiprocess.py::"
              "test_clients_on_one_process_get_every_message_sent_to_either_once_in_order"},
    {"name": "WebSocket resume: subscribed after the first replay batch (101 onwards lost)",
     "path": "demos/realtime_delivery/websocket.py",
     "find": "                if cursor == batch.last_seq:\n",
     "replace": "                if True:\n",
     "fails": "tests/integration/test_realtime_delivery_guarantees.py::"
              "test_resuming_far_past_one_batch_and_behind_the_window[websocket]"},
    {"name": "SSE resume: waits for what follows the last number, not the last batch sent",
     "path": "demos/realtime_delivery/sse.py",
     "find": "batch = hub.wait_after(conversation, cursor, settings.sse_heartbeat_s, BATCH)",
     "replace": "batch = hub.wait_after(conversation, batch.last_seq, settings.sse_heartbeat_s, BATCH)",
     "fails": "tests/integration/test_realtime_delivery_guarantees.py::"
              "test_resuming_far_past_one_batch_and_behind_the_window[sse]"},
    {"name": "long poll resume: with more than a batch waiting, only the newest 100 are answered",
     "path": "demos/realtime_delivery/long_polling.py",
     "find": "        return Response(batch.json, mimetype=\"application/json\")",
     "replace": "        batch = type(batch)(batch.messages[-100:], batch.last_seq, batch.gap, batch.first_seq)\n"
                "        return Response(batch.json, mimetype=\"application/json\")",
     "fails": "tests/integration/test_realtime_delivery_guarantees.py::"
              "test_resuming_far_past_one_batch_and_behind_the_window[long_poll]"},
    {"name": "short poll repeats the last message the client has (a duplicate)",
     "path": "demos/realtime_delivery/short_polling.py",
     "find": "        batch = hub.after(inputs.conversation_id(conversation), after)",
     "replace": "        batch = hub.after(inputs.conversation_id(conversation), max(0, after - 1))",
     "fails": "tests/integration/test_realtime_delivery_guarantees.py::"
              "test_a_burst_from_several_senders_reaches_every_transport_exactly_once_in_order"},
    {"name": "long poll repeats the last message the client has: the browser page must show it",
     "path": "demos/realtime_delivery/long_polling.py",
     "find": "            batch = hub.wait_after(conversation, after, timeout_s)",
     "replace": "            batch = hub.wait_after(conversation, max(0, after - 1), timeout_s)",
     "fails": "tests/e2e/test_realtime_delivery_browser.py::"
              "test_two_pages_on_different_transports_show_the_same_numbered_messages[long-poll-websocket]"},
    {"name": "idempotency id ignored: a resend is stored again",
     "path": "demos/realtime_delivery/hub.py",
     "find": "self.store.append(conversation, sender, body, client_ts, client_id=client_id)",
     "replace": "self.store.append(conversation, sender, body, client_ts)",
     "fails": "tests/integration/test_realtime_delivery_guarantees.py::"
              "test_resent_messages_are_stored_once_through_a_sigkill"},
    {"name": "ping bound removed: a flooding client is never closed",
     "path": "demos/realtime_delivery/websocket.py",
     "find": "        if self.pings > MAX_PINGS_PER_S and self.protocol.state is State.OPEN:",
     "replace": "        if False:",
     "fails": "tests/integration/test_realtime_delivery_attacks.py::"
              "test_a_ping_flood_is_closed_and_health_keeps_answering[reads]"},
    {"name": "a reset socket is written to: the replay goes on to the end",
     "path": "demos/realtime_delivery/send_buffer.py",
     "find": "        if self.broken:                                         # the client is gone: nothing more for it\n",
     "replace": "        if False:\n",
     "fails": "tests/integration/test_realtime_delivery_attacks.py::"
              "test_clients_that_reset_mid_replay_are_not_written_to_any_more"},
    {"name": "close code: a frame that fails a check ends in 1011, not 1008",
     "path": "demos/realtime_delivery/websocket.py",
     "find": "    return 1007 if isinstance(problem, inputs.NotJson) else 1008",
     "replace": "    return 1007 if isinstance(problem, inputs.NotJson) else 1011",
     "fails": "tests/integration/test_realtime_delivery_attacks.py::"
              "test_websocket_frames_that_fail_a_check_get_a_close_frame_and_write_nothing"},
    {"name": "validation: a frame's failed check drops the socket without a close frame",
     "path": "demos/realtime_delivery/websocket.py",
     "find": "        except inputs.BadInput as problem:\n            self.fail(close_code(problem), str(problem)[:120])\n",
     "replace": "        except inputs.BadInput as problem:\n            raise OSError(str(problem))\n",
     "fails": "tests/integration/test_realtime_delivery_properties_server.py::"
              "test_websocket_frames_on_the_running_server"},
    {"name": "validation: the WebSocket path matched with match, not fullmatch",
     "path": "demos/realtime_delivery/websocket.py",
     "find": "        match = PATH.fullmatch(request.path.split(\"?\", 1)[0])",
     "replace": "        match = PATH.match(request.path.split(\"?\", 1)[0])",
     "fails": "tests/integration/test_realtime_delivery_attacks.py::"
              "test_websocket_frames_that_fail_a_check_get_a_close_frame_and_write_nothing"},
    {"name": "validation: a conversation id checked with $ (a trailing newline passes)",
     "path": "demos/realtime_delivery/inputs.py",
     "find": "    if not isinstance(value, str) or CONVERSATION_ID.fullmatch(value) is None:",
     "replace": "    if not isinstance(value, str) or re.match(r\"^[A-Za-z0-9_-]{1,64}$\", value) is None:",
     "fails": "tests/integration/test_realtime_delivery_attacks.py::"
              "test_bad_input_over_http_is_a_4xx_with_a_reason_and_writes_nothing"},
]
