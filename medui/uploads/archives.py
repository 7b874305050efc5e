"""ZIP archives: everything is checked before a single byte is extracted, and extraction re-checks what it writes."""

from __future__ import annotations

import io
import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from medui.uploads.errors import MB, UploadRejected, mb, shown

DAMAGED = "The ZIP archive is damaged."
MAX_ENTRIES = 5000
MAX_TOTAL_BYTES = 2 * 1024**3
MAX_RATIO = 200
# Small entries compress absurdly well (1 KB of zeros is ~100x) and cannot hurt; ratios matter for big ones.
RATIO_FLOOR_BYTES = 1 * MB
NESTED_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".7z", ".rar")
NESTED_MAGIC = (
    (0, b"PK\x03\x04"),
    (0, b"PK\x05\x06"),
    (0, b"\x1f\x8b"),
    (0, b"7z\xbc\xaf\x27\x1c"),
    (0, b"Rar!"),
    (257, b"ustar"),
)
CHUNK = 1 * MB


@dataclass(frozen=True)
class ArchiveEntry:
    """One file in a ZIP archive: its name as stored in the archive, and its declared unpacked size."""

    name: str
    size: int


def _declared_entry_count(data: bytes) -> int | None:
    """Entry count from the end-of-central-directory record, read before zipfile builds one object per entry."""
    end = len(data) - 22  # where the record sits when the archive has no comment, as zipfile looks first
    if end < 0 or data[end : end + 4] != b"PK\x05\x06" or data[-2:] != b"\0\0":
        end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
    if end < 0 or end + 22 > len(data):
        return None
    count = int.from_bytes(data[end + 10 : end + 12], "little")
    # ZIP64 archives put 0xFFFF here and the real count in the ZIP64 record that the locator before us points to.
    if count == 0xFFFF and end >= 20 and data[end - 20 : end - 16] == b"PK\x06\x07":
        z64 = int.from_bytes(data[end - 12 : end - 4], "little")
        if data[z64 : z64 + 4] == b"PK\x06\x06":
            count = int.from_bytes(data[z64 + 32 : z64 + 40], "little")
    return count


def _name_problem(name: str) -> str | None:
    if not name:
        return "has an empty name"
    if name.startswith("/"):
        return "has an absolute path"
    if re.match(r"[A-Za-z]:", name):
        return "has a Windows drive letter"
    if "\\" in name:
        return "has a backslash in its path"
    if ".." in name.split("/"):
        return "points outside the archive (..)"
    if name.lower().endswith(NESTED_SUFFIXES):
        return "is an archive inside the archive"
    return None


def inspect_zip(
    data: bytes, max_entries: int = MAX_ENTRIES, max_total_bytes: int = MAX_TOTAL_BYTES, max_ratio: int = MAX_RATIO
) -> list[ArchiveEntry]:
    """Check a ZIP archive without extracting it; return its file entries (directories skipped)."""
    declared = _declared_entry_count(data)
    if declared is not None and declared > max_entries:
        raise UploadRejected(f"The ZIP archive has {declared:,} entries; the limit is {max_entries:,}.")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except Exception:  # noqa: BLE001 -- zipfile raises a zoo of types (BadZipFile, OSError, struct.error, ...) on crafted input
        raise UploadRejected(DAMAGED) from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_entries:
            raise UploadRejected(f"The ZIP archive has {len(infos):,} entries; the limit is {max_entries:,}.")
        entries: list[ArchiveEntry] = []
        seen: set[str] = set()
        for info in infos:
            entries += _check_entry(zf, info, seen, max_ratio)
    total = sum(e.size for e in entries)
    if total > max_total_bytes:
        raise UploadRejected(f"The ZIP archive would unpack to {mb(total)}; the limit is {mb(max_total_bytes)}.")
    return entries


def _check_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, seen: set[str], max_ratio: int) -> list[ArchiveEntry]:
    def reject(problem: str) -> UploadRejected:
        return UploadRejected(f"ZIP entry '{shown(info.filename)}' {problem}.")

    problem = _name_problem(info.filename)
    if problem:
        raise reject(problem)
    if info.filename in seen:
        raise reject("appears twice")
    seen.add(info.filename)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise reject("is a symbolic link")
    if info.flag_bits & 0x1:
        raise reject("is encrypted")
    if info.is_dir():
        return []
    if info.file_size > RATIO_FLOOR_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
        raise reject(f"expands more than {max_ratio} times (a zip bomb)")
    try:
        with zf.open(info) as member:
            head = member.read(262)  # enough for every magic in NESTED_MAGIC, tar's sits at 257
    except NotImplementedError:
        raise reject("uses an unsupported compression method") from None
    except Exception:  # noqa: BLE001 -- a damaged stream surfaces as BadZipFile, zlib.error, EOFError, ...
        raise UploadRejected(DAMAGED) from None
    if any(head[off : off + len(magic)] == magic for off, magic in NESTED_MAGIC):
        raise reject("is an archive inside the archive")
    return [ArchiveEntry(info.filename, info.file_size)]


def _relative_path(name: str) -> Path:
    # Names already passed _name_problem; this drops "." and empty parts and makes control characters harmless.
    parts = ["".join(c if c.isprintable() else "_" for c in p) for p in name.split("/") if p not in ("", ".")]
    return Path(*parts)


def extract_zip(data: bytes, dest: Path, **limits: int) -> list[Path]:
    """Inspect, then extract into dest counting the real bytes; on any failure remove what was written."""
    entries = inspect_zip(data, **limits)
    max_total = limits.get("max_total_bytes", MAX_TOTAL_BYTES)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    written: list[Path] = []
    made_dirs: list[Path] = []
    try:
        _extract(data, dest, entries, max_total, written, made_dirs)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        for directory in reversed(made_dirs):
            try:
                directory.rmdir()
            except OSError:
                pass
        raise
    return written


def _extract(
    data: bytes, dest: Path, entries: list[ArchiveEntry], max_total: int, written: list[Path], made_dirs: list[Path]
) -> None:
    total = 0
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for entry in entries:
            target = (dest / _relative_path(entry.name)).resolve()
            # resolve() follows symlinks already in dest, so this catches escapes through them too.
            if target == dest or not target.is_relative_to(dest):
                raise UploadRejected(f"ZIP entry '{shown(entry.name)}' points outside the archive.")
            missing = [p for p in reversed(target.parents) if p.is_relative_to(dest) and not p.exists()]
            for directory in missing:
                directory.mkdir()
                made_dirs.append(directory)
            try:
                with open(target, "xb") as out:  # never overwrite, not even an earlier entry of this archive
                    written.append(target)
                    for chunk in _chunks(zf, entry.name):
                        # Declared sizes can lie: count what actually comes out of the decompressor.
                        total += len(chunk)
                        if total > max_total:
                            raise UploadRejected(f"The ZIP archive unpacks to more than {mb(max_total)}.")
                        out.write(chunk)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                raise UploadRejected(f"ZIP entry '{shown(entry.name)}' would overwrite another file.") from None


def _chunks(zf: zipfile.ZipFile, name: str) -> Iterator[bytes]:
    """One member's decompressed bytes; a damaged stream (BadZipFile, zlib.error, a CRC mismatch...) is rejected.

    Errors from the caller's writes (disk full) are not raised in here, so they are never mistaken for damage.
    """
    try:
        with zf.open(name) as member:
            while chunk := member.read(CHUNK):
                yield chunk
    except Exception:  # noqa: BLE001 -- as above: damage shows up as many exception types
        raise UploadRejected(DAMAGED) from None
