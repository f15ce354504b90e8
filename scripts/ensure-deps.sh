#!/usr/bin/env bash
# Installs the Debian packages Holdfast's demo and tests run against, when they are missing.
# As root it installs them; otherwise it names the command to run and fails.
set -euo pipefail

# command -> Debian package that provides it
declare -A needs=(
  [fio]=fio
  [qemu-io]=qemu-utils
  [nbdinfo]=libnbd-bin
  [nbdkit]=nbdkit
  [mkfs.ext4]=e2fsprogs
  [resize2fs]=e2fsprogs
  [mkfs.xfs]=xfsprogs
  [fusermount]=fuse
  [losetup]=mount
  [etcd]=etcd-server
  [curl]=curl
  [openssl]=openssl
  [e2fsck]=e2fsprogs
  [fallocate]=util-linux
  [findmnt]=util-linux
  [blkid]=util-linux
  [ruby]=ruby [rubocop]=rubocop [ohai]=ohai
  [ip]=iproute2
  [runuser]=util-linux
  [ganesha.nfsd]=nfs-ganesha
  [nfs-ls]=libnfs-utils
)
missing=()
for cmd in "${!needs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
done
# fuse-native loads libfuse.so.2 at run time.
ldconfig -p 2>/dev/null | grep -q 'libfuse\.so\.2' || missing+=(libfuse2)
# Shared volumes: Ganesha loads its VFS backend as a plugin; the tests' NFS client loads libnfs through koffi.
[ -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ] || [ -e /usr/lib/ganesha/libfsalvfs.so ] || missing+=(nfs-ganesha-vfs)
ldconfig -p 2>/dev/null | grep -q 'libnfs\.so\.13' || missing+=(libnfs13)

if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "holdfast: missing Debian packages: ${missing[*]}" >&2
  echo "holdfast: install them as root with: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "holdfast: installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
