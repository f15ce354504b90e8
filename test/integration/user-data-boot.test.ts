import { type ChildProcess, execFile, spawn } from "node:child_process";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import S3rver from "s3rver";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { AwsProvider, TerraformStack, Testing } from "../../constructs/cdktf.js";
import { AwsNodeGroup, HoldfastCluster } from "../../constructs/index.js";
import { type AgentArtifact, agentArtifact } from "../support/agent-artifact.js";
import { apiOverTls, HOLDFAST, sh, stopChild } from "../support/agent-process.js";
import { AwsMock } from "../support/aws-mock.js";
import { devStoreArgs } from "../support/dev-cluster.js";

// AWS cannot run here: an IMDSv2 + Secrets Manager mock stands in for EC2 (its instance identity document signed by a
// test key standing in for AWS's), s3rver for S3, and a systemctl shim for systemd (not running on this machine).
// Everything else is real: the user data synthesized by AwsNodeGroup, run by bash, curl's SigV4, the artifact
// tarball, mkfs and mount of a loop device as the data drive, the agent enrolling through a real
// `holdfast cluster sign` that trusts the stand-in key, and joining a dev cluster's etcd.
const exec = promisify(execFile);
const NET = "127.0.40";
const NODE_IP = `${NET}.50`;
const BUCKET = "holdfast-artifacts-test";
const KEY = "holdfast/0.1.0/artifact.tar.gz";
const TOKEN_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:holdfast/dev/api-token";
const ETCD_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:holdfast/dev/etcd-client";
const API_NAME = "storage-api.example";
/** Stands in for the key AWS signs instance identity documents with. */
const AWS_STAND_IN = generateKeyPairSync("ec", { namedCurve: "P-256" });

let artifact: AgentArtifact;
let work = "";
let devDir = "";
let devToken = "";
let s3: S3rver;
let s3Url = "";
let aws: AwsMock;
let loop = "";
let scratch = "";
let signer: ChildProcess | undefined;
let signerLog = "";

/** GET `url` from a dev cluster's node (or the booted one) over https with the cluster CA; status 0 if unreachable. */
async function getOverTls(url: string): Promise<{ status: number; body: unknown }> {
  const ca = await readFile(join(devDir, "ca/ca.crt"), "utf8");
  return apiOverTls(url, { ca, token: devToken }).catch(() => ({ status: 0, body: null }));
}

/** Uploads a file to s3rver with curl, signed like the nodes sign their download. */
async function putObject(file: string): Promise<void> {
  await sh("curl", [
    "-fsS",
    "--aws-sigv4",
    "aws:amz:us-east-1:s3",
    "--user",
    "S3RVER:S3RVER",
    "-H",
    "x-amz-content-sha256: UNSIGNED-PAYLOAD",
    "-T",
    file,
    `${s3Url}/${BUCKET}/${KEY}`,
  ]);
}

/** The user data AwsNodeGroup synthesizes for a node whose data drive is `device`. */
function synthesizeUserData(dataDir: string, device: string): string {
  const stack = new TerraformStack(Testing.app(), "boot");
  new AwsProvider(stack, "aws", { region: "us-east-1" });
  const cluster = new HoldfastCluster(stack, "cluster", {
    clusterName: "dev",
    metadata: { etcdEndpoints: [`${NET}.10:2379`] },
    artifactPath: artifact.path,
    agent: { dataDir, mountDir: join(dataDir, "mnt"), pluginSocket: "none", csiSocket: "none" },
  });
  new AwsNodeGroup(stack, "storage", {
    cluster,
    vpcId: "vpc-1",
    shared: { secrets: { token: TOKEN_ARN, etcdClient: ETCD_ARN } },
    subnets: [{ subnetId: "subnet-a", availabilityZone: "us-east-1a" }],
    dataDrives: [{ sizeGiB: 10, deviceName: device }],
    endpoints: { s3: s3Url, secretsManager: aws.url },
  });
  const json = JSON.parse(Testing.synth(stack, true));
  const template = Object.values(json.resource.aws_launch_template)[0] as { user_data: string };
  return Buffer.from(template.user_data, "base64").toString();
}

/** Runs the user data as cloud-init would (bash, as root), in a scratch root with the systemctl shim first on PATH. */
async function boot(root: string, script: string) {
  await mkdir(join(root, "shim"), { recursive: true });
  await writeFile(join(root, "user-data.sh"), script, { mode: 0o755 });
  const shim = join(root, "shim/systemctl");
  await writeFile(
    shim,
    `#!/bin/bash
# Stands in for systemd: daemon-reload is a no-op; "enable --now UNIT" starts the unit's ExecStart in the background.
echo "$*" >> "$HOLDFAST_ROOT/systemctl.calls"
[ "$1" = enable ] || exit 0
cmd=$(sed -n 's/^ExecStart=//p' "$HOLDFAST_ROOT/etc/systemd/system/$3")
setsid $cmd > "$HOLDFAST_ROOT/agent.log" 2>&1 < /dev/null &
echo $! > "$HOLDFAST_ROOT/agent.pid"
`,
  );
  await chmod(shim, 0o755);
  return exec("bash", [join(root, "user-data.sh")], {
    env: {
      ...process.env,
      HOLDFAST_ROOT: root,
      HOLDFAST_IMDS: aws.url,
      PATH: `${join(root, "shim")}:${process.env.PATH}`,
    },
  }).then(
    ({ stderr }) => ({ code: 0, stderr }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
  );
}

test.before(async () => {
  artifact = await agentArtifact();
  work = await mkdtemp(join(tmpdir(), "hf-boot-"));
  devDir = join(work, "dev");
  const dev = JSON.parse(
    await sh(HOLDFAST, ["dev", "up", "--dir", devDir, "--nodes", "1", "--net", NET, "--output", "json"]),
  ) as { token: string };
  devToken = dev.token;
  s3 = new S3rver({
    port: 0,
    address: "127.0.0.1",
    silent: true,
    directory: join(work, "s3"),
    configureBuckets: [{ name: BUCKET, configs: [] }],
  });
  const { port } = await s3.run();
  s3Url = `http://127.0.0.1:${port}`;
  aws = await AwsMock.start({
    instanceId: "i-0a1b2c3d4e5f60718",
    localIpv4: NODE_IP,
    availabilityZone: "us-east-1a",
    availabilityZoneId: "use1-az1",
    region: "us-east-1",
    tags: {
      "holdfast:artifact-bucket": BUCKET,
      "holdfast:artifact-key": KEY,
      "holdfast:token-secret": TOKEN_ARN,
      "holdfast:etcd-secret": ETCD_ARN,
      "holdfast:api-name": API_NAME,
    },
    secrets: {
      [TOKEN_ARN]: devToken,
      // The dev cluster's etcd client certificate (CN holdfast-dev), as `holdfast etcd client` wrote it.
      [ETCD_ARN]: JSON.stringify({
        ca: await readFile(join(devDir, "etcd/client/ca.crt"), "utf8"),
        crt: await readFile(join(devDir, "etcd/client/client.crt"), "utf8"),
        key: await readFile(join(devDir, "etcd/client/client.key"), "utf8"),
      }),
    },
    identityKey: AWS_STAND_IN.privateKey,
  });
  // The operator's signer, where the CA is: it trusts the (stand-in) AWS key for identity documents.
  const trusted = join(work, "aws-identity.pem");
  await writeFile(trusted, AWS_STAND_IN.publicKey.export({ type: "spki", format: "pem" }));
  signer = spawn(
    HOLDFAST,
    [
      "cluster",
      "sign",
      "--ca-dir",
      join(devDir, "ca"),
      ...devStoreArgs(devDir, `https://${NET}.10:2379`),
    ].concat(["--watch", "--identity-document-key", trusted]),
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  signer.stdout?.on("data", (d) => {
    signerLog += d;
  });
  signer.stderr?.on("data", (d) => {
    signerLog += d;
  });
  const image = join(work, "drive.img");
  await sh("truncate", ["-s", "256M", image]);
  loop = (await sh("losetup", ["-f", "--show", image])).trim();
});

test.after(async () => {
  if (scratch) {
    const pid = await readFile(join(scratch, "agent.pid"), "utf8").catch(() => "");
    if (pid) {
      try {
        process.kill(Number(pid), "SIGTERM");
        for (let i = 0; i < 100; i++) {
          process.kill(Number(pid), 0);
          await new Promise((r) => setTimeout(r, 100));
        }
      } catch {
        // gone
      }
    }
    await exec("umount", [join(scratch, "data/pools/0")]).catch(() => undefined);
  }
  if (loop) await exec("losetup", ["-d", loop]).catch(() => undefined);
  await stopChild(signer, "SIGTERM");
  await aws?.stop();
  await s3?.close();
  if (devDir) await sh(HOLDFAST, ["dev", "down", "--dir", devDir]).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

test("a tampered artifact fails the checksum and installs nothing", async () => {
  const bad = join(work, "bad.tar.gz");
  await writeFile(bad, "tampered");
  await putObject(bad);
  const root = join(work, "tampered");
  const result = await boot(root, synthesizeUserData(join(root, "data"), loop));
  assert.is.not(result.code, 0);
  assert.match(result.stderr, /holdfast-agent-0\.1\.0\.tar\.gz: checksum mismatch, not installed/);
  assert.not.ok(await stat(join(root, "opt/holdfast/current")).catch(() => undefined));
  assert.not.ok(await stat(join(root, "systemctl.calls")).catch(() => undefined));
});

test("the user data installs the artifact, formats and mounts the drive, and starts an agent that joins the cluster", async () => {
  await putObject(artifact.path);
  scratch = join(work, "node");
  const dataDir = join(scratch, "data");
  const script = synthesizeUserData(dataDir, loop);
  assert.not.ok(script.includes(devToken), "the token is not in the user data");
  const result = await boot(scratch, script);
  assert.is(result.code, 0, result.stderr);

  // Installed from the verified tarball.
  assert.is(await readlink(join(scratch, "opt/holdfast/current")), "holdfast-agent-0.1.0");
  const { stdout: version } = await exec(join(scratch, "opt/holdfast/current/bin/holdfast"), ["--version"]);
  assert.is(version.trim(), artifact.version);
  // Secrets fetched with IMDSv2 credentials, written 0600; every metadata read carried a session token.
  assert.is((await readFile(join(dataDir, "token"), "utf8")).trim(), devToken);
  assert.is((await stat(join(dataDir, "token"))).mode & 0o777, 0o600);
  assert.is((await stat(join(dataDir, "etcd/client.key"))).mode & 0o777, 0o600);
  assert.is((await stat(join(dataDir, "etcd"))).mode & 0o777, 0o700);
  // The instance identity document the agent enrolls with, from IMDS, 0600; no CA was fetched.
  assert.is((await stat(join(dataDir, "identity-document.json"))).mode & 0o777, 0o600);
  assert.ok(aws.requests.includes("GET /latest/dynamic/instance-identity/signature"));
  assert.ok(aws.requests.includes("PUT /latest/api/token"));
  assert.ok(
    aws.requests.some((r) => r === "POST /"),
    "Secrets Manager was asked",
  );
  // The drive is an ext4 pool, mounted and in fstab.
  const { stdout: mount } = await exec("findmnt", ["-n", "-o", "SOURCE,FSTYPE", join(dataDir, "pools/0")]);
  assert.is(mount.trim().replace(/\s+/g, " "), `${loop} ext4`);
  assert.match(
    await readFile(join(scratch, "etc/fstab"), "utf8"),
    /^UUID=\S+ \S+\/pools\/0 ext4 defaults,nofail 0 2$/m,
  );
  // The agent config: the instance's values in place of the stand-ins.
  const config = JSON.parse(await readFile(join(scratch, "etc/holdfast/agent.json"), "utf8"));
  assert.equal(
    [config.nodeId, config.api, config.replication, config.zone, config.rack, config.store],
    [
      "i-0a1b2c3d4e5f60718",
      `${NODE_IP}:9001`,
      `${NODE_IP}:9002`,
      "us-east-1a",
      "use1-az1",
      `etcds://${NET}.10:2379`,
    ],
  );
  assert.match(
    await readFile(join(scratch, "systemctl.calls"), "utf8"),
    /daemon-reload\nenable --now holdfast-agent.service/,
  );

  // The agent joined: the dev cluster's node sees it, with zone and rack from its availability zone, and it
  // serves the cluster's API over HTTPS with its certificate and the cluster's token. Readiness waits, not
  // timings: 60 s on a loaded machine.
  let nodes: { id: string; zone: string; rack: string; state: string }[] = [];
  let ownApi = 0;
  for (let deadline = Date.now() + 60_000; Date.now() < deadline; ) {
    nodes = ((await getOverTls(`https://${NET}.11:9001/v1/nodes`)).body ?? []) as typeof nodes;
    ownApi = (await getOverTls(`https://${NODE_IP}:9001/v1/cluster`)).status;
    if (ownApi === 200 && nodes.some((n) => n.id === "i-0a1b2c3d4e5f60718" && n.state === "up")) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const joined = nodes.find((n) => n.id === "i-0a1b2c3d4e5f60718");
  assert.ok(
    joined,
    `not joined: ${JSON.stringify(nodes)}\n${await readFile(join(scratch, "agent.log"), "utf8").catch(() => "")}`,
  );
  assert.equal([joined.zone, joined.rack, joined.state], ["us-east-1a", "use1-az1", "up"]);
  assert.is(ownApi, 200);

  // Its own certificate, from the signer for its identity document; no node-side file holds the CA key.
  assert.ok(
    signerLog.includes("signed node i-0a1b2c3d4e5f60718's certificate"),
    signerLog + (await readFile(join(scratch, "agent.log"), "utf8")),
  );
  assert.match(signerLog, "(identity-document)");
  assert.is((await stat(join(dataDir, "tls/node.key"))).mode & 0o777, 0o600);
  assert.is(
    (await readFile(join(dataDir, "tls/ca.crt"), "utf8")).trim(),
    (await readFile(join(devDir, "ca/ca.crt"), "utf8")).trim(),
  );
  // It names the node's address and the API load balancer, as clients reach the API (HTTPS) by either.
  const cert = new X509Certificate(await readFile(join(dataDir, "tls/node.crt"), "utf8"));
  assert.ok(cert.checkIP(NODE_IP), cert.subjectAltName);
  assert.ok(cert.checkHost(API_NAME), cert.subjectAltName);
  const { stdout: keys } = await exec("find", [scratch, "-name", "ca.key"]);
  assert.is(keys, "");
  const caKey = (await readFile(join(devDir, "ca/ca.key"), "utf8")).split("\n")[1] as string;
  const holding = await exec("grep", ["-rlF", "-D", "skip", caKey, scratch]).then(
    ({ stdout }) => stdout,
    () => "",
  );
  assert.is(holding, "", "no file on the node holds the CA key");
});

test.run();
