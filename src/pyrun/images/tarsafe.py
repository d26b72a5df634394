"""tarfile, bounded: what Python's tarfile trusts in an archive, and a layer or an OCI archive must not.

tarfile reads every pax extended header and GNU long name whole, follows a chain of extended
headers by recursion (a few thousand pax headers in a row, a few MiB that gzip to a few KiB,
ended in RecursionError), reads a PAX 1.0 sparse map of any length (and fails with ValueError, not
a TarError, when it is short). GuardedTarInfo (pass as `tarinfo=` to tarfile.open) refuses:

- an extended header (pax, GNU long name/link) larger than MAX_EXTENDED_HEADER bytes;
- more than MAX_EXTENDED_CHAIN extended headers in a row before a member;
- a sparse map of more than MAX_SPARSE_ENTRIES entries (PAX 1.0 or old GNU 'S'), or a malformed one.

Each refusal is a tarfile.HeaderError (a TarError), so callers report it as a bad tar stream.

It also parses the common header faster (`frombuf`): a plain ustar/GNU header of a file, directory,
link or pax header with octal numbers and an unsigned checksum is read with one sum over the block
instead of tarfile's two struct unpacks of 504 bytes and a str decode per number; any other header,
and any it can't read, goes to tarfile's own parser, which decides (and raises) as before.
"""
from __future__ import annotations

import tarfile

MAX_EXTENDED_HEADER = 1 << 20
MAX_EXTENDED_CHAIN = 8
MAX_SPARSE_ENTRIES = 1 << 16

_EXTENDED = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
             tarfile.SOLARIS_XHDTYPE)


_FAST_TYPES = frozenset((tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                         tarfile.XHDTYPE))
_NUMBERS = ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148), (329, 337), (337, 345))  # mode ... devminor


def _octal(field: bytes) -> int:
    """An octal number field (NUL-terminated, space-padded); ValueError for anything else (base-256,
    non-ASCII, junk), which tarfile's parser then reads or refuses."""
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


class GuardedTarInfo(tarfile.TarInfo):
    """A TarInfo whose header processing is bounded (see the module docstring)."""

    @classmethod
    def frombuf(cls, buf, encoding, errors):  # noqa: ANN001,ANN206 - tarfile's own signature
        """tarfile.TarInfo.frombuf, with a fast path for plain headers (the same result: tested against it)."""
        try:
            if len(buf) != tarfile.BLOCKSIZE or buf[156:157] not in _FAST_TYPES:
                raise ValueError
            chksum = _octal(buf[148:156])
            if chksum != 256 + sum(buf) - sum(buf[148:156]):  # the checksum field counts as 8 spaces
                raise ValueError
            mode, uid, gid, size, mtime, devmajor, devminor = [_octal(buf[a:b]) for a, b in _NUMBERS]
        except ValueError:
            return super().frombuf(buf, encoding, errors)
        nts = tarfile.nts
        obj = cls()
        obj.name = nts(buf[0:100], encoding, errors)
        obj.mode, obj.uid, obj.gid, obj.size, obj.mtime, obj.chksum = mode, uid, gid, size, mtime, chksum
        obj.type = buf[156:157]
        obj.linkname = nts(buf[157:257], encoding, errors)
        obj.uname = nts(buf[265:297], encoding, errors)
        obj.gname = nts(buf[297:329], encoding, errors)
        obj.devmajor, obj.devminor = devmajor, devminor
        prefix = nts(buf[345:500], encoding, errors)
        if obj.type == tarfile.AREGTYPE and obj.name.endswith("/"):  # a V7 directory
            obj.type = tarfile.DIRTYPE
        if obj.type == tarfile.DIRTYPE:
            obj.name = obj.name.rstrip("/")
        if prefix:  # ustar's prefix (no GNU type takes this path)
            obj.name = prefix + "/" + obj.name
        return obj

    def _proc_member(self, tarfile_):  # noqa: ANN001 - tarfile's own hook
        if self.type not in _EXTENDED:
            return super()._proc_member(tarfile_)
        if self.size > MAX_EXTENDED_HEADER:
            raise tarfile.HeaderError(f"an extended header of {self.size} bytes at offset {self.offset} "
                                      f"(at most {MAX_EXTENDED_HEADER})")
        depth = getattr(tarfile_, "_pyrun_extended_depth", 0)
        if depth >= MAX_EXTENDED_CHAIN:
            raise tarfile.HeaderError(f"more than {MAX_EXTENDED_CHAIN} extended headers in a row "
                                      f"at offset {self.offset}")
        tarfile_._pyrun_extended_depth = depth + 1
        try:
            return super()._proc_member(tarfile_)
        finally:
            tarfile_._pyrun_extended_depth = depth

    def _proc_gnusparse_10(self, next, pax_headers, tarfile_):  # noqa: A002,ANN001 - tarfile's own signature
        """tarfile's PAX 1.0 sparse map reader, with the number of entries bounded and errors as HeaderError."""
        buf = tarfile_.fileobj.read(tarfile.BLOCKSIZE)
        count, _, buf = buf.partition(b"\n")
        if not count.strip().isdigit() or int(count) > MAX_SPARSE_ENTRIES:
            raise tarfile.HeaderError(f"a sparse map of {count[:20]!r} entries (at most {MAX_SPARSE_ENTRIES})")
        numbers: list[int] = []
        while len(numbers) < int(count) * 2:
            while b"\n" not in buf:
                more = tarfile_.fileobj.read(tarfile.BLOCKSIZE)
                if not more or len(buf) > 64:
                    raise tarfile.HeaderError("a malformed or truncated sparse map")
                buf += more
            number, _, buf = buf.partition(b"\n")
            if not number.isdigit():
                raise tarfile.HeaderError(f"a malformed sparse map entry {number[:20]!r}")
            numbers.append(int(number))
        next.offset_data = tarfile_.fileobj.tell()
        next.sparse = list(zip(numbers[::2], numbers[1::2]))

    def _proc_sparse(self, tarfile_):  # noqa: ANN001 - tarfile's own hook
        """tarfile's old-GNU sparse member ('S') reader, with its extension blocks bounded (it read them
        until one said "last", and failed with IndexError at the end of a truncated stream)."""
        structs, isextended, origsize = self._sparse_structs
        del self._sparse_structs
        while isextended:
            buf = tarfile_.fileobj.read(tarfile.BLOCKSIZE)
            if len(buf) < tarfile.BLOCKSIZE:
                raise tarfile.HeaderError("a truncated sparse header")
            for pos in range(0, 21 * 24, 24):
                try:
                    offset, numbytes = tarfile.nti(buf[pos:pos + 12]), tarfile.nti(buf[pos + 12:pos + 24])
                except tarfile.InvalidHeaderError:
                    break
                if offset and numbytes:
                    structs.append((offset, numbytes))
            if len(structs) > MAX_SPARSE_ENTRIES:
                raise tarfile.HeaderError(f"a sparse map of more than {MAX_SPARSE_ENTRIES} entries")
            isextended = bool(buf[504])
        self.sparse = structs
        self.offset_data = tarfile_.fileobj.tell()
        tarfile_.offset = self.offset_data + self._block(self.size)
        self.size = origsize
        return self
