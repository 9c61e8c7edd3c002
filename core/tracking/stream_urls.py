"""Network camera streams' URLs (``http://.../video`` MJPEG as phone camera apps serve it,
``rtsp://...``, ...): what counts as one, how it is shown (no password), and why one did
not open (:class:`core.tracking.sources.StreamSource` reads them).

OpenCV says nothing about why a stream did not open; :func:`why_stream_did_not_open` finds
out what it can (unknown host, nothing listening, an HTTP error, a server that answers with
no video) so the user gets one line that says what to fix. Passwords in URLs
(``rtsp://user:password@host/...``) never appear in messages (:func:`shown_url`).
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.parse
import urllib.request

#: URL schemes read as network streams.
STREAM_SCHEMES = ("http", "https", "rtsp", "rtsps", "rtmp", "udp", "tcp", "srt")
#: Default ports of the schemes whose reachability :func:`why_stream_did_not_open` checks.
DEFAULT_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322, "rtmp": 1935}
#: Seconds the reason-finding probes of a stream that did not open may take.
PROBE_TIMEOUT_S = 0.5


def is_stream_url(text: str) -> bool:
    parts = urllib.parse.urlsplit(text.strip())
    return parts.scheme.lower() in STREAM_SCHEMES and bool(parts.hostname)


def shown_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and lists."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def why_stream_did_not_open(url: str, timed_out: bool, open_timeout_s: float) -> str:
    """The likely reason OpenCV could not open ``url`` (it gives none itself); ``timed_out``:
    the attempt lasted its whole ``open_timeout_s``."""
    parts = urllib.parse.urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    port = parts.port or DEFAULT_PORTS.get(scheme)
    if port is not None:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
        except socket.gaierror:
            return f"unknown host {host!r} (check the address)"
        except ConnectionRefusedError:
            return f"nothing is listening on {host}:{port} (is the camera app or server running?)"
        except OSError:
            return f"{host}:{port} does not answer (check the address, and that this computer is on its network)"
        if scheme in ("http", "https") and (status := _http_error(url)) is not None:
            return f"the server answered {status} (check the path, e.g. /video)"
    if timed_out:
        return f"no video arrived within {open_timeout_s:.0f} s"
    return "the server sent nothing OpenCV can read as video (check the path and the stream's format)"


def _http_error(url: str) -> str | None:
    """``HTTP <code> <reason>`` when a GET of ``url`` fails with an HTTP error; None when it
    succeeds, times out or fails otherwise."""
    try:
        urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code} {error.reason}"
    except (OSError, ValueError):
        pass
    return None
