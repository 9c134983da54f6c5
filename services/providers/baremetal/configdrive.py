"""Config drives: a bare-metal node's cloud-init user data, as an ISO its BMC mounts.

A cloud node takes its user data from the cloud's metadata service; a bare-metal host has
none, so (as Ironic does with Redfish virtual media and ``config_via_removable``) the
provider burns it into a small ISO and inserts that into the BMC's removable virtual
media while the OS image sits in the CD drive. The ISO is cloud-init's NoCloud data
source: a filesystem labelled ``cidata`` holding ``user-data`` and ``meta-data``
(``instance-id`` is the Machine's uid, so a new Machine on the same host runs cloud-init
afresh). Rock Ridge and Joliet names, as ``genisoimage -J -r`` writes them.
"""

from __future__ import annotations

import io

import pycdlib
import yaml

VOLUME_LABEL = "cidata"  # what cloud-init's NoCloud looks for (blkid LABEL)
USER_DATA = "user-data"
META_DATA = "meta-data"
_ISO9660_NAMES = {USER_DATA: "/USERDATA.;1", META_DATA: "/METADATA.;1"}


class ConfigDriveError(ValueError):
    """The bytes are not a config drive this module can read."""


def build(user_data: str, *, instance_id: str, hostname: str) -> bytes:
    """The NoCloud ISO for one node."""
    meta = yaml.safe_dump({"instance-id": instance_id, "local-hostname": hostname},
                          sort_keys=False)
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL)
    try:
        for name, text in ((USER_DATA, user_data), (META_DATA, meta)):
            data = text.encode()
            iso.add_fp(io.BytesIO(data), len(data), _ISO9660_NAMES[name], rr_name=name,
                       joliet_path=f"/{name}")
        out = io.BytesIO()
        iso.write_fp(out)
    finally:
        iso.close()
    return out.getvalue()


def read(data: bytes) -> dict[str, str]:
    """``user-data`` and ``meta-data`` of a config drive, as a NoCloud reader sees them."""
    iso = pycdlib.PyCdlib()
    try:
        iso.open_fp(io.BytesIO(data))
    except pycdlib.pycdlibexception.PyCdlibException as e:
        raise ConfigDriveError(f"not an ISO 9660 image: {e}") from None
    try:
        label = iso.pvd.volume_identifier.decode(errors="replace").strip()
        if label.lower() != VOLUME_LABEL:
            raise ConfigDriveError(f"volume label is {label!r}, not {VOLUME_LABEL!r}")
        files: dict[str, str] = {}
        for name in (USER_DATA, META_DATA):
            out = io.BytesIO()
            try:
                iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            except pycdlib.pycdlibexception.PyCdlibException:
                raise ConfigDriveError(f"no {name} on the config drive") from None
            files[name] = out.getvalue().decode()
        return files
    finally:
        iso.close()
