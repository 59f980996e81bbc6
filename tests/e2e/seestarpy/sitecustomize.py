"""Network guard for the seestarpy test venv: only loopback traffic is possible.

Importing seestarpy sends a UDP broadcast to discover telescopes and may resolve
``seestar.local``. This module is installed as ``sitecustomize`` in the test's own
virtual environment, so it runs before any import: every connect, send and name
lookup that is not loopback raises ``OSError``.
"""

from __future__ import annotations

import ipaddress
import socket

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]")
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check(address):
    if isinstance(address, tuple) and address and not _is_loopback(address[0]):
        raise OSError(f"network guard: refusing traffic to {address[0]!r} (loopback only)")


_socket = socket.socket
_connect, _connect_ex = _socket.connect, _socket.connect_ex
_sendto, _sendmsg = _socket.sendto, _socket.sendmsg
_getaddrinfo, _gethostbyname = socket.getaddrinfo, socket.gethostbyname
_gethostbyname_ex = socket.gethostbyname_ex


def connect(self, address):
    _check(address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(address)
    return _connect_ex(self, address)


def sendto(self, data, *args):
    _check(args[-1])
    return _sendto(self, data, *args)


def sendmsg(self, buffers, ancdata=(), flags=0, address=None):
    if address is not None:
        _check(address)
    return _sendmsg(self, buffers, ancdata, flags, *(() if address is None else (address,)))


def getaddrinfo(host, *args, **kwargs):
    if host is not None and not _is_loopback(host):
        raise socket.gaierror(f"network guard: refusing to resolve {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


def gethostbyname(host):
    if not _is_loopback(host):
        raise socket.gaierror(f"network guard: refusing to resolve {host!r}")
    return _gethostbyname(host)


def gethostbyname_ex(host):
    if not _is_loopback(host):
        raise socket.gaierror(f"network guard: refusing to resolve {host!r}")
    return _gethostbyname_ex(host)


_socket.connect, _socket.connect_ex = connect, connect_ex
_socket.sendto, _socket.sendmsg = sendto, sendmsg
socket.getaddrinfo, socket.gethostbyname = getaddrinfo, gethostbyname
socket.gethostbyname_ex = gethostbyname_ex
