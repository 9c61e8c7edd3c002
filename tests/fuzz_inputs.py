"""Fuzzing the files a user gives: mutated ``.omg`` avatars, PLY point clouds, photos and videos.

    python tests/fuzz_inputs.py --seconds 75 --work DIR --json REPORT.json [--seed N]

Valid files are made in DIR (an avatar from a sample photo, its PLY, the photo, a short clip of
a sample video), then, until the time is up, one is mutated (truncated, bit-flipped, its header
edited, or turned into a size bomb) and handed to the command that reads it, in this process:
``export`` for avatars, ``reconstruct`` for photos, ``track`` for videos, ``load_ply`` for PLY
files (no command reads PLY). Each case is judged as the issue asks: exit status 0 or 2, one
``omg-avatar: error:`` line on error and no traceback, no output file after a failure; the
process's peak memory is reported. A passing case's folder is deleted once judged (its size
bombs and outputs add up to gigabytes a run). The report lists every case;
``tests/test_fuzz_inputs.py`` runs this and asserts on it. A fixed seed makes a run's sequence of cases repeatable.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import shutil
import struct
import sys
import tempfile
import time
import traceback
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.cli import main as cli_main  # noqa: E402
from core.errors import OmgError  # noqa: E402
from core.paths import SAMPLES_DIR  # noqa: E402
from core.render import load_ply  # noqa: E402

KINDS = ("omg", "ply", "photo", "video")
MUTATIONS = ("truncate", "bit_flips", "header_edit", "size_bomb")
CLIP_FRAMES = 6
HOSTILE_VALUES = [-1, 0, -(2**63), 2**63, 10**12, 1e308, float("nan"), "x" * 300, None, [], {}, [10**9, -5], True]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=75.0)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    valid = make_valid_files(args.work / "valid")
    rss_start_mb = _peak_rss_mb()
    rng = np.random.default_rng(args.seed)
    cases, spent = [], Counter({kind: 0.0 for kind in KINDS})
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        kind = min(KINDS, key=lambda k: spent[k])  # every kind gets an equal share of the time
        mutation = MUTATIONS[len([c for c in cases if c["kind"] == kind]) % len(MUTATIONS)]
        started = time.monotonic()
        case = run_case(kind, mutation, valid[kind], args.work / f"case{len(cases)}", rng)
        spent[kind] += time.monotonic() - started
        cases.append(case | {"seconds": round(time.monotonic() - started, 3)})
    report = {
        "seed": args.seed,
        "cases": cases,
        "counts": {kind: dict(Counter(c["outcome"] for c in cases if c["kind"] == kind)) for kind in KINDS},
        "rss_after_setup_mb": rss_start_mb,
        "peak_rss_mb": _peak_rss_mb(),
    }
    args.json.write_text(json.dumps(report, indent=1))
    return 0


def make_valid_files(folder: Path) -> dict[str, Path]:
    """An avatar of a sample photo, its PLY, the photo and a short clip of a sample video."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = folder / "photo.jpg"
    photo.write_bytes((SAMPLES_DIR / "photos" / "einstein.jpg").read_bytes())
    avatar, ply = folder / "avatar.omg", folder / "avatar.ply"
    for argv in (["reconstruct", str(photo), "-o", str(avatar)], ["export", str(avatar), "-o", str(ply)]):
        with contextlib.redirect_stdout(io.StringIO()):
            if cli_main(argv) != 0:
                raise SystemExit(f"fuzz set-up failed: omg-avatar {' '.join(argv)}")
    clip = folder / "clip.mp4"
    capture = cv2.VideoCapture(str(SAMPLES_DIR / "videos" / "talking_d0.mp4"))
    frames = [capture.read()[1] for _ in range(CLIP_FRAMES)]
    capture.release()
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 25, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(frame)
    writer.release()
    return {"omg": avatar, "ply": ply, "photo": photo, "video": clip}


def run_case(kind: str, mutation: str, valid: Path, folder: Path, rng: np.random.Generator) -> dict:
    """Mutate ``valid``, hand it to its reader, and judge the result."""
    folder.mkdir()
    data, detail = MUTATORS[mutation](kind, valid.read_bytes(), rng)
    given = folder / f"input{valid.suffix}"
    given.write_bytes(data)
    output = folder / "out" / {"omg": "avatar.ply", "ply": "-", "photo": "avatar.omg", "video": "track.json"}[kind]
    output.parent.mkdir()
    status, out, err = _read(kind, given, output)
    lines = [line for line in err.splitlines() if line.strip()]
    problems = []
    if status not in (0, 2):
        problems.append(f"exit status {status}")
    if "Traceback" in err or "Traceback" in out:
        problems.append("a traceback")
    if status == 2 and (len(lines) != 1 or not lines[0].startswith("omg-avatar: error: ")):
        problems.append(f"{len(lines)} error lines")
    leftovers = sorted(p.name for p in output.parent.iterdir() if p != output)
    if status != 0 and output.exists():
        problems.append("an output file after a failure")
    if leftovers:
        problems.append(f"left behind {leftovers}")
    if not problems:
        shutil.rmtree(folder)
    return {
        "kind": kind,
        "mutation": mutation,
        "detail": detail,
        "size": len(data),
        "status": status,
        "error": lines[0] if status == 2 and lines else None,
        "outcome": "failed" if problems else ("read" if status == 0 else "refused"),
        "problems": problems,
        "stderr": err[-2000:] if problems else "",
        "peak_rss_mb": _peak_rss_mb(),
    }


def _read(kind: str, given: Path, output: Path) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of reading ``given`` as a user would."""
    argv = {
        "omg": ["export", str(given), "-o", str(output)],
        "photo": ["reconstruct", str(given), "-o", str(output)],
        "video": ["track", str(given), "--max-frames", str(CLIP_FRAMES - 1), "--json", str(output)],
    }.get(kind)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli_main(argv) if argv else _load_ply(given)
        except SystemExit as exit:
            status = exit.code if isinstance(exit.code, int) else 1
        except BaseException:  # noqa: BLE001 - a crash is what the fuzzer looks for
            traceback.print_exc()
            status = 1
    return status, out.getvalue(), err.getvalue()


def _load_ply(path: Path) -> int:
    """load_ply as a command would use it: 0, or one error line and 2."""
    try:
        load_ply(path)
    except OmgError as error:
        print(f"omg-avatar: error: {error}", file=sys.stderr)
        return 2
    return 0


def truncate(kind: str, data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    end = int(rng.integers(0, len(data)))
    return data[:end], f"first {end} of {len(data)} bytes"


def bit_flips(kind: str, data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """1 to 32 bits flipped, half the time within the first 4 KiB (where headers are)."""
    mutable = bytearray(data)
    span = min(len(data), 4096) if rng.random() < 0.5 else len(data)
    positions = rng.integers(0, span, size=int(rng.integers(1, 33)))
    for position in positions:
        mutable[position] ^= 1 << int(rng.integers(0, 8))
    return bytes(mutable), f"{len(positions)} bits in the first {span} bytes"


def header_edit(kind: str, data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    if kind == "omg":
        return _edit_avatar_header(data, rng)
    if kind == "ply":
        head, body = data.split(b"end_header\n", 1)
        lines = head.decode().splitlines()
        index = int(rng.integers(1, len(lines)))
        words = lines[index].split()
        words[int(rng.integers(0, len(words)))] = str(rng.choice(["-5", "0", "99999999999", "double", "list", "x"]))
        lines[index] = " ".join(words)
        return ("\n".join(lines) + "\n").encode() + b"end_header\n" + body, f"header line {index}: {lines[index]}"
    mutable = np.frombuffer(data, np.uint8).copy()  # photos and videos: random bytes within the headers
    positions = rng.integers(0, min(len(data), 1024), size=8)
    mutable[positions] = rng.integers(0, 256, size=8)
    return mutable.tobytes(), f"8 random bytes in the first {min(len(data), 1024)}"


def size_bomb(kind: str, data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    if kind == "omg":
        return _avatar_bomb(data, rng)
    if kind == "ply":
        count = int(rng.choice([10**9, 10**12, 2**63 - 1]))
        header = f"ply\nformat binary_little_endian 1.0\nelement vertex {count}\nproperty float x\nend_header\n"
        return header.encode() + bytes(4096), f"a binary PLY declaring {count} vertices"
    if kind == "photo":
        side = int(rng.choice([30_000, 100_000, 2**31 - 1]))
        return _png_declaring(side, side), f"a PNG declaring {side}x{side} pixels"
    return _stretched_video(rng), "a video of 16x2000 pixel frames"


def _edit_avatar_header(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    members = _zip_members(data)
    header = json.loads(np.load(io.BytesIO(members["header.npy"])).tobytes())
    field = str(rng.choice(["first_level", "num_lods", "camera_size", "scheme", "refiner", "flame", "version", "method"]))
    value = HOSTILE_VALUES[int(rng.integers(0, len(HOSTILE_VALUES)))]
    header[field] = value
    buffer = io.BytesIO()
    np.save(buffer, np.frombuffer(json.dumps(header).encode(), np.uint8))
    members["header.npy"] = buffer.getvalue()
    return _zip(members), f"header {field} = {value!r}"[:120]


def _avatar_bomb(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A member declaring a huge shape, or one whose deflated stream inflates to 256 MiB more."""
    members = _zip_members(data)
    name = str(rng.choice(sorted(members)))
    if rng.random() < 0.5:
        rows = int(rng.choice([10**8, 10**11, 2**40]))
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": (rows, 3)})
        members[name] = buffer.getvalue() + bytes(64)
        return _zip(members), f"{name} declaring ({rows}, 3)"
    members[name] += bytes(256 << 20)
    return _zip(members, zipfile.ZIP_DEFLATED), f"{name} inflating by 256 MiB"


def _zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels, with a few bytes of data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(1024))) + chunk(b"IEND", b"")


def _stretched_video(rng: np.random.Generator) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "stretched.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (16, 2000))
        for _ in range(3):
            writer.write(rng.integers(0, 256, (2000, 16, 3), dtype=np.uint8))
        writer.release()
        return path.read_bytes()


def _peak_rss_mb() -> float:
    """This process's peak resident memory. Not ``ru_maxrss``: Linux carries that over from
    the parent through fork and exec, so a large test runner's size would count as ours."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: the best there is


MUTATORS = {"truncate": truncate, "bit_flips": bit_flips, "header_edit": header_edit, "size_bomb": size_bomb}

if __name__ == "__main__":
    sys.exit(main())
