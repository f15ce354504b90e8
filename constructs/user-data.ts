import type { AgentConfigInput } from "../agent/src/config/index.js";
import { AGENT_CONFIG_PATH } from "./agent-settings.js";

/** Stand-ins the boot script replaces with the instance's own values, read from IMDSv2. */
export const BOOT_VALUES = {
  instanceId: "@INSTANCE_ID@",
  localIpv4: "@LOCAL_IPV4@",
  zone: "@AVAILABILITY_ZONE@",
  rack: "@AVAILABILITY_ZONE_ID@",
  /** The API load balancer's DNS name (instance tag holdfast:api-name), when there is one. */
  apiName: "@API_NAME@",
} as const;

/** Instance tags (read through IMDS) that tell the boot script where its artifact and secrets are. */
export const BOOT_TAGS = {
  bucket: "holdfast:artifact-bucket",
  key: "holdfast:artifact-key",
  tokenSecret: "holdfast:token-secret",
  etcdSecret: "holdfast:etcd-secret",
  /** The API load balancer's DNS name, when there is one: the node certificate names it, as clients reach the API by it. */
  apiName: "holdfast:api-name",
} as const;

export interface BootScriptOptions {
  /** The agent config with BOOT_VALUES where the instance's own values go. */
  readonly config: AgentConfigInput;
  readonly artifact: { readonly fileName: string; readonly sha256: string; readonly version: string };
  readonly secretStore: "secretsmanager" | "ssm";
  /** EBS device names, each formatted (once) and mounted as the matching pool of `config.pools`. */
  readonly devices: readonly string[];
  /** Service endpoints, for S3-compatible stores, FIPS or private endpoints; empty means the region's public one. */
  readonly endpoints: { readonly s3?: string; readonly secretsManager?: string; readonly ssm?: string };
}

const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/**
 * The cloud-init user data of an AWS node: a shell script, so that cloud-init runs it as is and a test can run it
 * too. It holds no secret: the API token is fetched at boot with the instance role's credentials (SigV4 through
 * curl), from where the instance's tags say. It hands the node no CA key: the agent enrolls with the instance
 * identity document (IMDS's document and signature, which AWS signs), answered by `holdfast cluster sign`. HOLDFAST_ROOT (a scratch root
 * for every path but the agent's data dir) and HOLDFAST_IMDS are for tests; on EC2 both are unset.
 */
export function renderBootScript(o: BootScriptOptions): string {
  const pools = o.config.pools ?? [];
  return `#!/bin/bash
# Holdfast node boot, rendered by AwsNodeGroup: installs the bundled agent ${o.artifact.version} from S3 (checksum
# verified), fetches the API token from ${o.secretStore === "ssm" ? "SSM Parameter Store" : "Secrets Manager"} and the instance identity document (the agent enrolls
# with it), formats and mounts the data drives as storage pools, writes ${AGENT_CONFIG_PATH} and starts holdfast-agent.
# No CA key ever reaches the node.
set -euo pipefail
umask 022
ROOT="\${HOLDFAST_ROOT:-}"
IMDS="\${HOLDFAST_IMDS:-http://169.254.169.254}"
VERSION=${quote(o.artifact.version)}
ARTIFACT_FILE=${quote(o.artifact.fileName)}
ARTIFACT_SHA256=${quote(o.artifact.sha256)}
SECRET_STORE=${quote(o.secretStore)}
S3_ENDPOINT=${quote(o.endpoints.s3 ?? "")}
SECRETSMANAGER_ENDPOINT=${quote(o.endpoints.secretsManager ?? "")}
SSM_ENDPOINT=${quote(o.endpoints.ssm ?? "")}
DATA_DIR=${quote(o.config.dataDir)}
TLS_DIR=${quote(o.config.tlsDir ?? `${o.config.dataDir}/tls`)}
DEVICES=(${o.devices.map(quote).join(" ")})
POOLS=(${pools.map(quote).join(" ")})
AGENT_CONFIG=$(cat <<'HOLDFAST_CONFIG'
${JSON.stringify(o.config, null, 2)}
HOLDFAST_CONFIG
)

log() { echo "holdfast-boot: $*" >&2; }
fail() { log "$*"; exit 1; }

# Node 20 or later runs the agent; fuse for volume mounts.
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  if command -v dnf >/dev/null; then
    dnf install -y -q nodejs20 fuse-libs && ln -sf /usr/bin/node-20 /usr/local/bin/node
  elif command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq nodejs libfuse2
  fi
  node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || fail "Node 20 or later is required"
fi
# One value from a JSON document on stdin, by a dotted path.
json() { node -e 'let d="";process.stdin.on("data",(c)=>{d+=c}).on("end",()=>{let v=JSON.parse(d);for(const k of process.argv[1].split("."))v=v?.[k];if(v===undefined)process.exit(1);process.stdout.write(typeof v==="string"?v:JSON.stringify(v))})' "$1"; }

# IMDSv2 only: a session token first.
IMDS_TOKEN=$(curl -fsS -X PUT "$IMDS/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 600") || fail "IMDSv2 token refused"
imds() { curl -fsS -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "$IMDS/latest/meta-data/$1"; }
INSTANCE_ID=$(imds instance-id)
LOCAL_IPV4=$(imds local-ipv4)
AZ=$(imds placement/availability-zone)
AZ_ID=$(imds placement/availability-zone-id)
REGION=$(imds placement/region)
BUCKET=$(imds tags/instance/${BOOT_TAGS.bucket}) || fail "tag ${BOOT_TAGS.bucket} missing (instance metadata tags must be on)"
KEY=$(imds tags/instance/${BOOT_TAGS.key})
TOKEN_SECRET=$(imds tags/instance/${BOOT_TAGS.tokenSecret})
ETCD_SECRET=$(imds tags/instance/${BOOT_TAGS.etcdSecret} 2>/dev/null || true)
API_NAME=$(imds tags/instance/${BOOT_TAGS.apiName} 2>/dev/null) || API_NAME=""
ROLE=$(imds iam/security-credentials/ | head -n1)
CREDENTIALS=$(imds "iam/security-credentials/$ROLE")
ACCESS_KEY=$(json AccessKeyId <<<"$CREDENTIALS")
SECRET_KEY=$(json SecretAccessKey <<<"$CREDENTIALS")
SESSION_TOKEN=$(json Token <<<"$CREDENTIALS")

# An AWS request signed with SigV4 by curl, with the instance role's temporary credentials.
aws_curl() {
  local service=$1; shift
  curl -fsS --retry 5 --retry-all-errors --aws-sigv4 "aws:amz:$REGION:$service" --user "$ACCESS_KEY:$SECRET_KEY" \\
    -H "x-amz-security-token: $SESSION_TOKEN" "$@"
}
# A JSON API call: service, X-Amz-Target, body.
aws_json() {
  local endpoint=$1 service=$2 target=$3 body=$4
  aws_curl "$service" -H "X-Amz-Target: $target" -H "Content-Type: application/x-amz-json-1.1" --data "$body" "$endpoint/"
}
secret() {
  if [ "$SECRET_STORE" = ssm ]; then
    aws_json "\${SSM_ENDPOINT:-https://ssm.$REGION.amazonaws.com}" ssm AmazonSSM.GetParameter \\
      "{\\"Name\\":\\"$1\\",\\"WithDecryption\\":true}" | json Parameter.Value
  else
    aws_json "\${SECRETSMANAGER_ENDPOINT:-https://secretsmanager.$REGION.amazonaws.com}" secretsmanager \\
      secretsmanager.GetSecretValue "{\\"SecretId\\":\\"$1\\"}" | json SecretString
  fi
}

log "installing $ARTIFACT_FILE"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "$S3_ENDPOINT" ]; then url="$S3_ENDPOINT/$BUCKET/$KEY"; else url="https://$BUCKET.s3.$REGION.amazonaws.com/$KEY"; fi
aws_curl s3 -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -o "$work/$ARTIFACT_FILE" "$url" || fail "cannot download s3://$BUCKET/$KEY"
echo "$ARTIFACT_SHA256  $work/$ARTIFACT_FILE" | sha256sum -c --status - || fail "$ARTIFACT_FILE: checksum mismatch, not installed"
mkdir -p "$ROOT/opt/holdfast" "$ROOT/etc/holdfast" "$ROOT/etc/systemd/system"
tar -xzf "$work/$ARTIFACT_FILE" -C "$ROOT/opt/holdfast"
ln -sfn "holdfast-agent-$VERSION" "$ROOT/opt/holdfast/current"

log "fetching the API token and the instance identity document"
mkdir -p "$DATA_DIR"
(umask 077; secret "$TOKEN_SECRET" > "$DATA_DIR/token")
# What the agent enrolls with when it has no certificate in $TLS_DIR: AWS's signed document naming this instance.
IDENTITY_DOCUMENT=$(curl -fsS -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "$IMDS/latest/dynamic/instance-identity/document")
IDENTITY_SIGNATURE=$(curl -fsS -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "$IMDS/latest/dynamic/instance-identity/signature")
(umask 077; node -e 'process.stdout.write(JSON.stringify({document: process.argv[1], signature: process.argv[2]}))' \
  "$IDENTITY_DOCUMENT" "$IDENTITY_SIGNATURE" > "$DATA_DIR/identity-document.json")

${etcdClientFetch(o.config)}
for i in "\${!DEVICES[@]}"; do
  device=\${DEVICES[$i]} pool=\${POOLS[$i]}
  for _ in $(seq 60); do [ -b "$device" ] && break; sleep 2; done
  [ -b "$device" ] || fail "data drive $device did not appear"
  # Formatted once: a rebooted node keeps its replicas.
  blkid "$device" >/dev/null || mkfs.ext4 -q -L "holdfast$i" "$device"
  uuid=$(blkid -s UUID -o value "$device")
  mkdir -p "$pool"
  grep -q "UUID=$uuid " "$ROOT/etc/fstab" 2>/dev/null || echo "UUID=$uuid $pool ext4 defaults,nofail 0 2" >> "$ROOT/etc/fstab"
  mountpoint -q "$pool" || mount "$device" "$pool"
done

log "writing ${AGENT_CONFIG_PATH} for $INSTANCE_ID in $AZ ($AZ_ID)"
sed -e "s/${BOOT_VALUES.instanceId}/$INSTANCE_ID/g" -e "s/${BOOT_VALUES.localIpv4}/$LOCAL_IPV4/g" \\
  -e "s/${BOOT_VALUES.zone}/$AZ/g" -e "s/${BOOT_VALUES.rack}/$AZ_ID/g" -e "s/${BOOT_VALUES.apiName}/$API_NAME/g" \\
  <<<"$AGENT_CONFIG" > "$ROOT${AGENT_CONFIG_PATH}"
cat > "$ROOT/etc/systemd/system/holdfast-agent.service" <<UNIT
[Unit]
Description=Holdfast node agent
Wants=network-online.target
After=network-online.target local-fs.target

[Service]
ExecStart=$ROOT/opt/holdfast/current/bin/holdfast agent --config $ROOT${AGENT_CONFIG_PATH}
Restart=always
RestartSec=2
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now holdfast-agent.service
log "holdfast-agent started"
`;
}

/**
 * The boot step that fetches the cluster's etcd client certificate (JSON `{"ca", "crt", "key"}`) into the files the
 * agent config names, keys mode 0600; nothing when the config speaks plain HTTP to etcd (a lab).
 */
function etcdClientFetch(config: AgentConfigInput): string {
  if (!config.etcdCa || !config.etcdCert || !config.etcdKey) return "";
  return `log "fetching the cluster's etcd client certificate"
[ -n "$ETCD_SECRET" ] || fail "tag ${BOOT_TAGS.etcdSecret} missing: the store is etcds:// and needs a client certificate"
for attempt in $(seq 60); do
  if etcd=$(secret "$ETCD_SECRET" 2>/dev/null) && [ -n "$etcd" ]; then break; fi
  [ "$attempt" = 60 ] && fail "the etcd client secret $ETCD_SECRET has no value"
  log "waiting for the etcd client certificate in $ETCD_SECRET"; sleep 10
done
(umask 077; mkdir -p ${quote(dirOf(config.etcdKey))}
  json ca <<<"$etcd" > ${quote(config.etcdCa)}; json crt <<<"$etcd" > ${quote(config.etcdCert)}
  json key <<<"$etcd" > ${quote(config.etcdKey)})
`;
}

const dirOf = (file: string) => file.slice(0, file.lastIndexOf("/"));
