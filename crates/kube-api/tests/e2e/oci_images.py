"""Test images written here as OCI image layouts (one uncompressed layer), for `localfargate image
load`: Debian's static busybox, and the host's own Python with the AWS SDK for Python (boto3 and
botocore from this venv), so that an unmodified SDK runs inside a pod."""

import glob
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

BUSYBOX = "/bin/busybox"

# Where the SDK's packages go in the image (the pod's PYTHONPATH).
SDK_PACKAGES = "/opt/python-sdk"
# The venv's packages boto3 needs at run time, and the names they are imported as.
SDK_MODULES = ("boto3", "botocore", "dateutil", "jmespath", "s3transfer", "urllib3", "six")
# Parts of the standard library a program in the image never imports; left out for size.
STDLIB_LEFT_OUT = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages",
                   "__pycache__"}


def process_runtime_missing():
    """Why the process runtime cannot run pods here, or None."""
    if os.geteuid() != 0:
        return "the process runtime needs root"
    if shutil.which("runc") is None:
        return "runc is not installed"
    return None


def _blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _file_blob(layout, path):
    """Moves the file at `path` into the layout's blobs; its descriptor."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    size = os.path.getsize(path)
    shutil.move(path, layout / "blobs" / "sha256" / digest.hexdigest())
    return {"digest": f"sha256:{digest.hexdigest()}", "size": size}


def write_layout(layout, reference, fill, cmd, env=()):
    """An OCI image layout at `layout` tagged `reference`: one uncompressed layer whose entries
    `fill(tar)` adds, and an image config with `cmd` and `env` (a PATH is always there)."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    fd, layer_path = tempfile.mkstemp(dir=layout)
    with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        fill(tar)
    layer = _file_blob(layout, layer_path)
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    image_config = {
        "architecture": arch, "os": "linux",
        "config": {"Cmd": list(cmd), "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", *env]},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
    }
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   **_blob(layout, json.dumps(image_config).encode())},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
    }
    index = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       **_blob(layout, json.dumps(manifest).encode()),
                       "annotations": {"org.opencontainers.image.ref.name": reference}}],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))


def _dirs(tar, *names, mode=0o755):
    for name in names:
        info = tarfile.TarInfo(name.strip("/"))
        info.type, info.mode = tarfile.DIRTYPE, mode
        tar.addfile(info)


def _bytes(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name.strip("/"))
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _base(tar):
    """What every test image has: /bin, /etc with root's passwd entry, /tmp."""
    _dirs(tar, "bin", "etc")
    _dirs(tar, "tmp", mode=0o1777)
    _bytes(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")


def busybox_layout(layout, reference):
    """Debian's static busybox as /bin/busybox, with some of its applets."""
    def fill(tar):
        _base(tar)
        with open(BUSYBOX, "rb") as f:
            _bytes(tar, "bin/busybox", f.read(), mode=0o755)
        for applet in ("sh", "echo", "cat", "head", "sleep", "true", "false", "printf", "mkdir", "httpd"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    write_layout(layout, reference, fill, ["sh"])


def _shared_libraries(*binaries):
    """The shared libraries `ldd` resolves for `binaries` (their loader included): paths as the
    host's dynamic loader finds them, so the same paths in the image find the same files."""
    found = set()
    for binary in binaries:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) > parts.index("=>") + 1 and parts[parts.index("=>") + 1].startswith("/"):
                found.add(parts[parts.index("=>") + 1])
            elif parts and parts[0].startswith("/"):
                found.add(parts[0])
    return sorted(found)


def python_sdk_image():
    """(interpreter path, PYTHONHOME, PYTHONPATH) of the image `python_sdk_layout` writes: the
    pod's command and env."""
    return os.path.realpath(sys.executable), sys.base_prefix, SDK_PACKAGES


def python_sdk_layout(layout, reference):
    """The host's own Python (the interpreter this test runs on, resolved; the shared libraries
    it and its extension modules link; its standard library less what `STDLIB_LEFT_OUT` names)
    with this venv's boto3, botocore and their dependencies under `SDK_PACKAGES`. botocore keeps
    only the service models it needs here (STS) besides its shared data files.

    Files keep their host paths, so the interpreter finds its libraries (RUNPATH, the loader's
    default directories) and its standard library (PYTHONHOME) where the host does."""
    interpreter, home, packages = python_sdk_image()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    dynload = stdlib / "lib-dynload"
    # The extension modules link libssl, libz, libffi, ...; Tk's is never imported.
    extensions = [p for p in glob.glob(str(dynload / "*.so")) if "_tkinter" not in p]
    libraries = _shared_libraries(interpreter, *extensions)
    site = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p, "botocore").is_dir()))

    def skip_stdlib(info):
        parts = Path(info.name).relative_to(str(stdlib).strip("/")).parts
        if parts and (parts[0] in STDLIB_LEFT_OUT or parts[0].startswith("config-") or "__pycache__" in parts):
            return None
        return info

    def skip_packages(info):
        parts = Path(info.name).parts
        if "__pycache__" in parts:
            return None
        # botocore/data/<service>/...: STS only (the web identity provider and the test's calls).
        if "botocore" in parts:
            rest = parts[parts.index("botocore") + 1:]
            if len(rest) >= 2 and rest[0] == "data" and (Path(site, "botocore", *rest[:2]).is_dir()) \
                    and rest[1] != "sts":
                return None
        return info

    def fill(tar):
        _base(tar)
        made = set()

        def parents(path):
            # Real directories for every parent (the host's /lib may be a symlink to usr/lib).
            for parent in reversed(Path(path).parents):
                if str(parent) not in ("/", ".") and str(parent) not in made:
                    made.add(str(parent))
                    _dirs(tar, str(parent))

        for path in [interpreter, *libraries]:
            parents(path)
            # Dereferenced: the file's content at the path the loader asks for.
            tar.add(os.path.realpath(path), arcname=path.strip("/"), recursive=False)
        parents(stdlib)
        tar.add(str(stdlib), arcname=str(stdlib).strip("/"), filter=skip_stdlib)
        parents(Path(packages, "x"))
        for module in SDK_MODULES:
            source = site / module if (site / module).is_dir() else site / f"{module}.py"
            tar.add(str(source), arcname=f"{packages.strip('/')}/{source.name}", filter=skip_packages)

    write_layout(layout, reference, fill, [interpreter])
