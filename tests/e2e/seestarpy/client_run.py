"""Drive seestarpy 0.7.1's ``crowdsky.server`` against a local server (run in its venv).

argv[1] is a JSON request; the answers are printed as one JSON line.
"""

from __future__ import annotations

import json
import socket
import sys
from datetime import datetime

request = json.loads(sys.argv[1])
# the guard must be active before seestarpy is imported
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("192.0.2.1", 9))
    sys.exit("network guard is not active")
except OSError:
    pass

from seestarpy.crowdsky import chunks, server  # noqa: E402

out = {}
server.set_base_url(request["base_url"])
server.set_credentials(request["username"], "wrong password")
try:
    server.list_stacks()
    out["bad_login"] = "accepted"
except RuntimeError as exc:
    out["bad_login"] = str(exc)
server.set_credentials(request["username"], request["password"])
step = request["step"]
if step == "first":
    out["empty"] = server.list_stacks()
    out["upload"] = server.upload_stack(
        request["stack"], n_frames_input=request["n_frames"], scrub_location=1
    )
    token = server.raw_start_session()
    out["raw_files"] = [server.raw_upload_file(token, p) for p in request["raws"]]
    out["finalize"] = server.raw_finalize(token)
    out["keys"] = [
        chunks.compute_chunk_key(datetime.fromisoformat(t), ra, dec)
        for t, ra, dec in request["positions"]
    ]
else:
    out["stacks"] = server.list_stacks()
    out["by_object"] = server.list_stacks(request["object"])
    out["downloaded"] = [str(p) for p in server.download_stack(request["keys"], request["dest"])]
    out["sync"] = server.upload_all_stacks(local_dir=request["local_dir"], skip_existing=True)
print(json.dumps(out, default=str))
