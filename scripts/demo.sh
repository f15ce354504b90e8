#!/usr/bin/env bash
# The quick start's main job: a single-node Holdfast agent in a temporary directory, a volume created from an
# inline spec, mounted, used, inspected, and everything torn down again.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

if [ "$(id -u)" -ne 0 ]; then
  echo "holdfast demo: mounting a volume needs root (loop devices, mount, FUSE): run it as root" >&2
  exit 1
fi
bash scripts/ensure-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
[ -f dist/holdfast.mjs ] || npm run --silent build

dir="$(mktemp -d /tmp/holdfast-demo.XXXXXX)"
port="${HOLDFAST_DEMO_PORT:-9801}"
export HOLDFAST_API="http://127.0.0.1:${port}"
hf() { "$root/bin/holdfast" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

agent_pid=""
cleanup() {
  set +e
  if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
    kill -TERM "$agent_pid"
    wait "$agent_pid" 2>/dev/null
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

step "start a node agent (data in $dir)"
# Started directly (not through the hf function) so that $! is the agent itself and cleanup can stop it.
"$root/bin/holdfast" agent --data-dir "$dir/data" --node-id demo-node --api "127.0.0.1:${port}" \
  --mount-dir "$dir/mounts" --log-level warn &
agent_pid=$!
for _ in $(seq 100); do
  kill -0 "$agent_pid" 2>/dev/null || { echo "holdfast demo: the agent exited (see above)" >&2; exit 1; }
  [ -f "$dir/data/token" ] && curl -fsS -o /dev/null -H "authorization: Bearer $(cat "$dir/data/token")" \
    "$HOLDFAST_API/v1/cluster" 2>/dev/null && break
  sleep 0.1
done
HOLDFAST_TOKEN="$(cat "$dir/data/token")"
export HOLDFAST_TOKEN
hf cluster status

step "holdfast volume create 'name=pgdata,size=2G,fs=ext4,io_profile=db,labels=app:pg;tier:db'"
hf volume create 'name=pgdata,size=2G,fs=ext4,io_profile=db,labels=app:pg;tier:db'

step "holdfast volume mount pgdata   (FUSE-backed file + loop device + mkfs.ext4 on first use)"
hf volume mount pgdata
mnt="$dir/mounts/pgdata"

step "write and read files on the volume"
mkdir -p "$mnt/demo"
head -c 8388608 /dev/urandom >"$mnt/demo/blob"
echo "hello from holdfast" >"$mnt/demo/hello.txt"
sync -f "$mnt/demo/blob"
(cd "$mnt/demo" && sha256sum blob hello.txt | tee "$dir/sums")
df -h "$mnt"

step "unmount, mount again: the files are still there"
hf volume unmount pgdata
hf volume mount pgdata
(cd "$mnt/demo" && sha256sum -c "$dir/sums")

step "holdfast volume inspect pgdata"
hf volume inspect pgdata

step "tear down"
hf volume unmount pgdata
hf volume delete pgdata
hf volume list
echo
echo "demo finished: the agent stops and $dir is removed"
