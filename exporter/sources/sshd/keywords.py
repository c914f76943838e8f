"""Which sshd_config keywords a given OpenSSH release knows, and how it takes each one.

sshd refuses to start on a keyword it does not know (`Bad configuration option`), but it accepts the
keywords it has retired or was built without, with a log line (`Deprecated option`, `Unsupported
option`). The file parser needs that distinction to say "sshd would refuse this file" without running
sshd, so the table below records, per keyword, the releases that accept it and how.

Where the table comes from: the `keywords[]` array of servconf.c in openssh/openssh-portable (from
10.4 on, the `SSHD_CONFIG_ENTRIES*` macros of servconf.h that fill it), read at each release tag from
V_7_4_P1 to V_10_5_P1. `sDeprecated` and `sIgnore` entries are `deprecated` here, `sUnsupported`
entries `unsupported`; every other opcode is an `option`. Keywords sshd compiles in or out (UsePAM,
Kerberos*, GSSAPI*) are listed once as options: either way sshd accepts them.

How to update it for a new release: list the keywords of the new tag's table (for instance
`git show V_10_6_P1:servconf.h`), compare with the rows below, end the rows of the keywords it dropped
with the new version in `until`, add rows for the new ones with it in `since`, and raise `NEWEST`.
A row's range is `since` (included, `-`: 7.4 or older) to `until` (excluded, `-`: still there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

Version = tuple[int, int]

OLDEST: Version = (7, 4)  # the first release the table was read from: older ones are taken as 7.4
NEWEST: Version = (10, 5)  # the last one: newer ones are checked against every keyword any release knew


class Kind(Enum):
    """How sshd takes a keyword. Only UNKNOWN makes it refuse the file."""

    OPTION = "option"
    DEPRECATED = "deprecated"  # accepted, logged as deprecated, no effect
    UNSUPPORTED = "unsupported"  # accepted, logged as not supported by this build, no effect
    UNKNOWN = "unknown"


# keyword                          since   until   kind
_TABLE = """
AcceptEnv                          -       -       option
AddressFamily                      -       -       option
AFSTokenPassing                    -       10.4    unsupported
AFSTokenPassing                    10.4    -       deprecated
AllowAgentForwarding               -       -       option
AllowGroups                        -       -       option
AllowStreamLocalForwarding         -       -       option
AllowTcpForwarding                 -       -       option
AllowUsers                         -       -       option
AuthenticationMethods              -       -       option
AuthorizedKeysCommand              -       -       option
AuthorizedKeysCommandUser          -       -       option
AuthorizedKeysFile                 -       -       option
AuthorizedKeysFile2                -       -       deprecated
AuthorizedPrincipalsCommand        -       -       option
AuthorizedPrincipalsCommandUser    -       -       option
AuthorizedPrincipalsFile           -       -       option
Banner                             -       -       option
CASignatureAlgorithms              7.9     -       option
ChallengeResponseAuthentication    -       -       option
ChannelTimeout                     9.2     -       option
CheckMail                          -       -       deprecated
ChrootDirectory                    -       -       option
Ciphers                            -       -       option
ClientAliveCountMax                -       -       option
ClientAliveInterval                -       -       option
Compression                        -       -       option
DenyGroups                         -       -       option
DenyUsers                          -       -       option
DisableForwarding                  -       -       option
DSAAuthentication                  -       -       option
ExposeAuthInfo                     7.6     -       option
FingerprintHash                    -       -       option
ForceCommand                       -       -       option
GatewayPorts                       -       -       option
# 10.4 renamed the four GSSAPI keywords by mistake (GssAuthentication...); 10.5 restored the names.
GSSAPIAuthentication               -       10.4    option
GSSAPIAuthentication               10.5    -       option
GSSAPICleanupCredentials           -       10.4    option
GSSAPICleanupCredentials           10.5    -       option
GSSAPIDelegateCredentials          10.3    10.4    option
GSSAPIDelegateCredentials          10.5    -       option
GSSAPIStrictAcceptorCheck          -       10.4    option
GSSAPIStrictAcceptorCheck          10.5    -       option
GssAuthentication                  10.4    10.5    option
GssCleanupCreds                    10.4    10.5    option
GssDelegateCreds                   10.4    10.5    option
GssStrictAcceptor                  10.4    10.5    option
HostbasedAcceptedAlgorithms        8.5     -       option
HostbasedAcceptedKeyTypes          -       -       option
HostbasedAuthentication            -       -       option
HostbasedUsesNameFromPacketOnly    -       -       option
HostCertificate                    -       -       option
HostDSAKey                         -       -       option
HostKey                            -       -       option
HostKeyAgent                       -       -       option
HostKeyAlgorithms                  -       -       option
IgnoreRhosts                       -       -       option
IgnoreUserKnownHosts               -       -       option
Include                            8.2     -       option
IPQoS                              -       -       option
KbdInteractiveAuthentication       -       -       option
KeepAlive                          -       -       option
KerberosAuthentication             -       -       option
KerberosGetAFSToken                -       -       option
KerberosOrLocalPasswd              -       -       option
KerberosTgtPassing                 -       10.4    unsupported
KerberosTgtPassing                 10.4    -       deprecated
KerberosTicketCleanup              -       -       option
KexAlgorithms                      -       -       option
KeyRegenerationInterval            -       -       deprecated
ListenAddress                      -       -       option
LoginGraceTime                     -       -       option
LogLevel                           -       -       option
LogVerbose                         8.5     -       option
MACs                               -       -       option
Match                              -       -       option
MaxAuthTries                       -       -       option
MaxSessions                        -       -       option
MaxStartups                        -       -       option
ModuliFile                         8.6     -       option
PAMAuthenticationViaKbdInt         -       10.4    deprecated
PAMServiceName                     9.8     -       option
PasswordAuthentication             -       -       option
PermitEmptyPasswords               -       -       option
PermitListen                       7.8     -       option
PermitOpen                         -       -       option
PermitRootLogin                    -       -       option
PermitTTY                          -       -       option
PermitTunnel                       -       -       option
PermitUserEnvironment              -       -       option
PermitUserRC                       -       -       option
PerSourceMaxStartups               8.5     -       option
PerSourceNetBlockSize              8.5     -       option
PerSourcePenalties                 9.8     -       option
PerSourcePenaltyExemptList         9.8     -       option
PidFile                            -       -       option
Port                               -       -       option
PrintLastLog                       -       -       option
PrintMotd                          -       -       option
Protocol                           -       -       deprecated
PubkeyAcceptedAlgorithms           8.5     -       option
PubkeyAcceptedKeyTypes             -       -       option
PubkeyAuthentication               -       -       option
PubkeyAuthOptions                  8.2     -       option
RDomain                            7.7     -       option
RefuseConnection                   9.9     -       option
RekeyLimit                         -       -       option
RequiredRSASize                    9.1     -       option
ReverseMappingCheck                -       -       deprecated
RevokedKeys                        -       -       option
RhostsAuthentication               -       -       deprecated
RhostsRSAAuthentication            -       -       deprecated
RSAAuthentication                  -       -       deprecated
SecurityKeyProvider                8.2     -       option
ServerKeyBits                      -       -       deprecated
SetEnv                             7.8     -       option
SKeyAuthentication                 -       7.8     option
SKeyAuthentication                 7.8     8.7     deprecated
SKeyAuthentication                 8.7     -       option
SshdAuthPath                       10.0    -       option
SshdSessionPath                    9.8     -       option
StreamLocalBindMask                -       -       option
StreamLocalBindUnlink              -       -       option
StrictModes                        -       -       option
Subsystem                          -       -       option
SyslogFacility                     -       -       option
TCPKeepAlive                       -       -       option
TrustedUserCAKeys                  -       -       option
UnusedConnectionTimeout            9.2     -       option
UseDNS                             -       -       option
UseLogin                           -       -       deprecated
UsePAM                             -       -       option
UsePrivilegeSeparation             -       7.5     option
UsePrivilegeSeparation             7.5     -       deprecated
VerifyReverseMapping               -       -       deprecated
VersionAddendum                    -       -       option
X11DisplayOffset                   -       -       option
X11Forwarding                      -       -       option
X11UseLocalhost                    -       -       option
XAuthLocation                      -       -       option
"""

# Keywords that distributions' patches add. The GSSAPI key exchange patch is carried by Debian, Ubuntu,
# Fedora, RHEL and SUSE, whose release strings do not all name the distribution: its keywords are
# taken whatever the release (a vanilla build would refuse them; a false "sshd would refuse" is the
# worse error). DebianBanner is Debian's own patch, taken when the release string names Debian or
# Ubuntu, or is unknown. Checked against Debian 12's sshd (9.2p1): `sshd -t` accepts each of these.
_PATCHED: dict[str, tuple[Kind, tuple[str, ...]]] = {
    "gssapikeyexchange": (Kind.OPTION, ()),
    "gssapikexalgorithms": (Kind.OPTION, ()),
    "gssapistorecredentialsonrekey": (Kind.OPTION, ()),
    "gssapicleanupcreds": (Kind.OPTION, ()),
    "gssapiusesessioncredcache": (Kind.UNSUPPORTED, ()),
    "debianbanner": (Kind.OPTION, ("Debian", "Ubuntu")),
}


@dataclass(frozen=True)
class _Row:
    since: Version
    until: Version | None
    kind: Kind


def _version(text: str) -> Version:
    major, minor = text.split(".")
    return int(major), int(minor)


def _load(table: str) -> dict[str, tuple[_Row, ...]]:
    rows: dict[str, list[_Row]] = {}
    for line in table.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, since, until, kind = line.split()
        row = _Row(
            OLDEST if since == "-" else _version(since),
            None if until == "-" else _version(until),
            Kind(kind),
        )
        rows.setdefault(name.lower(), []).append(row)
    return {name: tuple(found) for name, found in rows.items()}


_ROWS = _load(_TABLE)


def version_of(text: str | None) -> Version | None:
    """`9.2p1` -> (9, 2); None when there is no version to read."""
    match = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class Keywords:
    """The keywords of one sshd build, as far as its version and release string tell.

    `version` None (no binary to read, as under a fixture rootfs) or past NEWEST: a keyword counts as
    known when any release in the table knows it, so a typo is still caught and a real keyword of
    another release is not taken for one."""

    version: Version | None = None
    release: str = ""

    def kind(self, keyword: str) -> Kind:
        name = keyword.lower()
        patched = _PATCHED.get(name)
        if patched is not None and (
            not patched[1] or not self.release or any(tag in self.release for tag in patched[1])
        ):
            return patched[0]
        rows = _ROWS.get(name, ())
        if self.version is None or self.version > NEWEST:
            return rows[-1].kind if rows else Kind.UNKNOWN
        version = max(self.version, OLDEST)
        for row in rows:
            if row.since <= version and (row.until is None or version < row.until):
                return row.kind
        return Kind.UNKNOWN

    def before(self, version: Version) -> bool:
        """Whether this sshd is known to be older than `version` (an unknown one is taken as recent)."""
        return self.version is not None and self.version < version

    @classmethod
    def of(cls, version: str | None, release: str = "") -> Keywords:
        """The keywords of the sshd whose version (`9.2p1`) and release string the binary gave."""
        return cls(version_of(version), release)

    def describe(self) -> str:
        """How the reasons name the release the verdict is for."""
        newest = f"{NEWEST[0]}.{NEWEST[1]}"
        if self.version is None:
            return f"every OpenSSH release from {OLDEST[0]}.{OLDEST[1]} to {newest}"
        named = f"OpenSSH {self.version[0]}.{self.version[1]}"
        return f"{named} and every release to {newest}" if self.version > NEWEST else named
