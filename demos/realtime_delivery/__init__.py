"""Chapter 1, real-time delivery (http如何像tcp一样实时的收消息?): web IM over HTTP and WebSocket.

One process serves a conversation's messages four ways, from one numbered message pool:

- ``short_polling``: ask every interval; a message waits for the next poll;
- ``long_polling``: the article's channel; the request is held until a message arrives;
- ``sse``: Server-Sent Events, one long response the browser resumes by itself;
- ``websocket``: a socket; messages are pushed.

Run: ``python -m demos.realtime_delivery.server --port 8000 --ws-port 8001``.
"""
