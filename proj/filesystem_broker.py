"""kombu's filesystem transport with an atomic put: the embedded default broker.

kombu 5.7's filesystem transport creates the message file under its final name, then locks
and writes it. A consumer polling the folder can move that file away in between (it takes no
lock), read it empty and die on the JSON decode (celery/kombu#1551 shows the symptom); the
message is lost with it. Here a message is written under a name the consumers skip and
renamed into place when complete: rename is atomic, so a consumer sees all of it or nothing.
"""
import os
import time
import uuid

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # same name pattern as kombu (time-ordered, then uuid, then queue) so FIFO order holds
        name = f"{int(round(time.monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"      # consumers take only names ending in "<queue>.msg"
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
