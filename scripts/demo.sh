#!/usr/bin/env bash
# The quick start's main job: a local 3-node fabric (a real etcd and three agents on 127.0.0.11-13), a volume with
# three replicas from an inline spec, files written on it, a node killed, the data intact, the replica resynced,
# and everything torn down again.
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

dir="$(mktemp -d /tmp/holdfast-demo.XXXXXX)/cluster"
hf() { "$root/bin/holdfast" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  set +e
  hf dev down --dir "$dir" >/dev/null 2>&1
  rm -rf "$(dirname "$dir")"
}
trap cleanup EXIT

step "holdfast dev up --nodes 3   (a real etcd on 127.0.0.10, agents on 127.0.0.11-13, one zone each)"
up="$(hf dev up --dir "$dir" --nodes 3 --lease-ttl 3 --output json)"
HOLDFAST_TOKEN="$(node -e 'console.log(JSON.parse(process.argv[1]).token)' "$up")"
# The agents have certificates from the dev cluster's CA: the API is HTTPS, trusted by that CA.
export HOLDFAST_API=https://127.0.0.11:9001 HOLDFAST_TOKEN HOLDFAST_CA="$dir/ca/ca.crt"
hf cluster status

step "holdfast volume create 'name=pgdata,size=1G,repl=3,io_profile=db,labels=app:pg'"
hf volume create 'name=pgdata,size=1G,repl=3,io_profile=db,labels=app:pg'

step "holdfast volume mount pgdata   (on node1: FUSE-backed file + loop device + mkfs.ext4 on first use)"
hf volume mount pgdata
mnt="$dir/node1/mounts/pgdata"

step "write files on the volume: every write goes to all three replicas before it is acknowledged"
mkdir -p "$mnt/demo"
head -c 16777216 /dev/urandom >"$mnt/demo/blob"
echo "hello from holdfast" >"$mnt/demo/hello.txt"
sync -f "$mnt/demo/blob"
(cd "$mnt/demo" && sha256sum blob hello.txt | tee "$dir/sums")

step "kill node3 (SIGKILL): the volume stays writable and its data intact"
hf dev stop --dir "$dir" --node node3 --signal SIGKILL
head -c 8388608 /dev/urandom >"$mnt/demo/after-kill"
sync -f "$mnt/demo/after-kill"
(cd "$mnt/demo" && sha256sum after-kill >>"$dir/sums" && sha256sum -c "$dir/sums")
hf volume inspect pgdata

step "start node3 again: its replica resyncs what it missed while writes go on"
hf dev start --dir "$dir" --node node3
hf volume update pgdata --repl 3 --wait
hf volume inspect pgdata

step "holdfast volume check pgdata   (all in-sync replicas compared region by region)"
hf volume check pgdata

step "tear down"
hf volume unmount pgdata
hf volume delete pgdata
echo
echo "demo finished: the cluster stops and $(dirname "$dir") is removed"
