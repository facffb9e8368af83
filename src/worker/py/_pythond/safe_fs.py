"""History, records and result files opened without trusting the path (src/secure-fs.ts is the
daemon's side): directories must be ours, not links, not writable by others, and are refused (not
chmod'ed into shape) otherwise; files are created with O_EXCL|O_NOFOLLOW or opened with
O_NOFOLLOW, and modes are set through the descriptor, never through a path that may be a link."""
import os
import stat

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class Unsafe(Exception):
    pass


def _describe(path, why, st=None):
    detail = " (owner uid %d, mode %s)" % (st.st_uid, oct(st.st_mode & 0o7777).replace("0o", "0")) if st else ""
    return Unsafe("%s: %s%s" % (path, why, detail))


def check_dir(path):
    """The lstat of path if it is a directory of ours that others cannot write to; None if absent."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise _describe(path, "is a symbolic link", st)
    if not stat.S_ISDIR(st.st_mode):
        raise _describe(path, "is not a directory", st)
    if st.st_uid != os.geteuid():
        raise _describe(path, "belongs to another user", st)
    if st.st_mode & 0o022:
        raise _describe(path, "group or others can write to it", st)
    return st


def private_dir(path):
    """Creates path 0700, or checks the existing one; one of ours that others may read is tightened
    through a descriptor (never through the path)."""
    st = check_dir(path)
    if st is None:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = check_dir(path)
        if st is None:
            raise _describe(path, "vanished while being created")
    if st.st_mode & 0o077:
        fd = os.open(path, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
        try:
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
    return path


def open_append(path):
    """An fd appending to path (created 0600), refusing a link or a file of another user."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _CLOEXEC | _NOFOLLOW, 0o600)
    except OSError as e:
        if os.path.islink(path):
            raise _describe(path, "is a symbolic link")
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise _describe(path, "is not a regular file of yours", st)
    if st.st_mode & 0o077:
        os.fchmod(fd, 0o600)
    return fd


def create_new(path, tries=3):
    """A fresh file at path (O_EXCL|O_NOFOLLOW, 0600) for writing: whatever was there (a stale
    temporary file, a planted link) is unlinked first, never followed."""
    for _ in range(tries):
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
        except FileExistsError:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    raise _describe(path, "keeps being recreated by someone else")
