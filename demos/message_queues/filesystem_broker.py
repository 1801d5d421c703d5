"""kombu's filesystem transport, with each message written whole before it can be seen.

The stock transport creates ``<time>_<uuid>.<queue>.msg`` and then writes into it, and its reader
takes no lock: a worker polling every 10 ms can pick up the file while it is still empty, fail to
parse it and lose the job (kombu issue #1551; it failed about one test run in six here under CPU
load). Writing to a hidden name and renaming it into place makes the message appear atomically:
readers only look at names of the form ``<...>.<queue>.msg``, which a dotted temp name never is.
"""
import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        hidden = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(hidden, "wb") as out:
                out.write(str_to_bytes(dumps(payload)))
            os.rename(hidden, final)          # atomic on one filesystem
        except OSError as error:
            raise ChannelError(f"Cannot add file {final!r} to directory") from error


class Transport(filesystem.Transport):
    Channel = Channel
